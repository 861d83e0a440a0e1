"""Playground pages: the start form, and the page that shows a running lab.

Thin: the form validates, the lab host (through labclient) does the rest. The web tier
keeps no lab state: which labs exist and whose they are is the host's registry in Redis; the
session only holds the learner's owner token and their recent lab ids.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from course.progress import progress_record_experiment
from course.records import experiment_started
from course.snapshot import course_snapshot
from playground import labclient as client
from playground import runs
from playground.addresses import client_address
from playground.forms import LabStartForm, start_initial
from playground.labclient import LabHostUnavailable, LabRefused, LabStartsLimited
from playground.views_pair import pair_remember
from playground.views_watch import share_context

LAB_ID_ALPHABET = string.ascii_lowercase + string.digits
RECENT_LABS = 2


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_safe
@vary_on_headers("HX-Request")
def index(request: HtmxHttpRequest) -> HttpResponse:
    if request.htmx.boosted:
        return full_page_load(request)
    return _render_start(request, LabStartForm(initial=start_initial(request.GET.get("mode"))))


@require_POST
def lab_start(request: HtmxHttpRequest) -> HttpResponse:
    form = LabStartForm(request.POST)
    if not form.is_valid():
        return _render_start(request, form, status=400)
    # The labs to start, by variant name ("" for a lab on its own), and their experiments.
    configs: dict[str, dict[str, Any]] = {"": form.lab_config()}
    experiments: dict[str, dict[str, Any] | None] = {"": None}
    answer = request.POST.get("prediction")
    if form.cleaned_data["experiment"]:
        # A lesson's experiment: its preset and steps, from the course as it is now.
        found = course_snapshot().experiment_get(slug=form.cleaned_data["experiment"])
        if found is None:
            form.add_error(None, "This experiment is no longer in the course.")
            return _render_start(request, form, status=400)
        lesson, exp = found
        lesson_url = reverse("course:lesson", args=[lesson.slug])
        configs = exp.configs()  # side by side: one lab per variant, the same traffic
        experiments = {
            name: exp.run_message(answer=answer, lesson_url=lesson_url, variant=name)
            for name in configs
        }
    owner = request.session.get("lab_owner") or secrets.token_urlsafe(24)
    started: dict[str, str] = {}
    for name, config in configs.items():
        lab_id = "".join(secrets.choice(LAB_ID_ALPHABET) for _ in range(8))
        try:
            client.lab_create(
                lab_id=lab_id,
                owner=owner,
                config=config,
                address=client_address(request),
                experiment=experiments[name],
            )
        except LabHostUnavailable as exc:
            return _render_start(request, form, error=str(exc), status=503)
        except LabStartsLimited as exc:
            response = _render_start(request, form, error=str(exc), status=429)
            response["Retry-After"] = str(exc.retry_after)
            return response
        except LabRefused as exc:
            return _render_start(request, form, error=str(exc), status=409)
        started[name] = lab_id
        # Saved at once: a second lab that fails to start leaves the first one reachable.
        request.session["lab_owner"] = owner
        request.session["labs"] = [lab_id, *request.session.get("labs", [])][:RECENT_LABS]
    if form.cleaned_data["experiment"]:
        progress_record_experiment(session=request.session, slug=lesson.slug, experiment=exp.slug)
        # One record a run (a pair's is its first lab's, judged by the pair's page).
        experiment_started(
            session=request.session,
            lab_id=next(iter(started.values())),
            lesson_slug=lesson.slug,
            experiment_slug=exp.slug,
            prediction=answer,
        )
    if len(started) > 1:
        first, second = started.values()
        pair_remember(request.session, first=first, second=second, slug=exp.slug, answer=answer)
        return redirect("playground:pair_detail", first=first, second=second)
    return redirect("playground:lab_detail", lab_id=started[next(iter(started))])


@require_safe
@vary_on_headers("HX-Request")
def lab_detail(request: HtmxHttpRequest, lab_id: str) -> HttpResponse:
    return _lab_page(request, lab_id, presenting=False)


@require_safe
@vary_on_headers("HX-Request")
def lab_present(request: HtmxHttpRequest, lab_id: str) -> HttpResponse:
    """The projector's layout of the owner's lab: large type, the join code, shortcuts."""
    return _lab_page(request, lab_id, presenting=True)


def _lab_page(request: HtmxHttpRequest, lab_id: str, *, presenting: bool) -> HttpResponse:
    if request.htmx.boosted:
        return full_page_load(request)
    # The session first: with Redis down this raises, and the learner gets the 503 page (an
    # outage), not the registry's "no such lab" that lab_get reads into a failed lookup.
    owner = request.session.get("lab_owner")
    record = client.lab_get(lab_id)
    if record is None:
        host_alive = client.host_alive()
        reason = (
            "This lab has ended (labs close a minute after their last viewer leaves)."
            if host_alive
            else "This lab is gone: the lab host is not running. Start it with make run."
        )
        return unavailable_page(request, lab_id, reason, status=404)
    if not record.owned_by(owner):
        reason = "This lab belongs to another browser session. Start one of your own."
        return unavailable_page(request, lab_id, reason, status=403)
    context = {
        "mode": record.mode,
        "ws_path": f"/ws/labs/{lab_id}/",
        "presenting": presenting,
        "run_days": runs.run_days(),
        **share_context(request, record),
    }
    return render(request, "playground/lab.html", context)


def unavailable_page(
    request: HttpRequest, lab_id: str, reason: str, *, status: int
) -> HttpResponse:
    return render(
        request, "playground/unavailable.html", {"reason": reason, "lab_id": lab_id}, status=status
    )


def _render_start(
    request: HtmxHttpRequest, form: LabStartForm, *, error: str = "", status: int = 200
) -> HttpResponse:
    recent = [lab_id for lab_id in request.session.get("labs", []) if client.lab_get(lab_id)]
    context = {
        "form": form,
        "error": error,
        "host_alive": client.host_alive(),
        "recent_labs": recent,
    }
    return render(request, "playground/start.html", context, status=status)


def full_page_load(request: HtmxHttpRequest) -> HttpResponse:
    """Playground pages bring their own stylesheets and scripts (charts, the socket), which a
    boosted swap of <body> would not load in order: ask htmx for a real navigation instead."""
    return HttpResponseClientRedirect(request.get_full_path())
