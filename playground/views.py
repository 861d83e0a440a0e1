"""Playground pages: the start form, and the page that shows a running lab.

Thin: the form validates, the lab host (through labclient) does the rest. The web tier
keeps no lab state: which labs exist and whose they are is the host's registry in Redis; the
session only holds the learner's owner token and their recent lab ids.
"""

from __future__ import annotations

import ipaddress
import secrets
import string
from typing import Any

from django.conf import settings
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
from playground.forms import LabStartForm, start_initial
from playground.labclient import LabHostUnavailable, LabRefused, LabStartsLimited

LAB_ID_ALPHABET = string.ascii_lowercase + string.digits
RECENT_LABS = 2


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_safe
@vary_on_headers("HX-Request")
def index(request: HtmxHttpRequest) -> HttpResponse:
    if request.htmx.boosted:
        return _full_page_load(request)
    return _render_start(request, LabStartForm(initial=start_initial(request.GET.get("mode"))))


@require_POST
def lab_start(request: HtmxHttpRequest) -> HttpResponse:
    form = LabStartForm(request.POST)
    if not form.is_valid():
        return _render_start(request, form, status=400)
    config, experiment = form.lab_config(), None
    if form.cleaned_data["experiment"]:
        # A lesson's experiment: its preset and steps, from the course as it is now.
        found = course_snapshot().experiment_get(slug=form.cleaned_data["experiment"])
        if found is None:
            form.add_error(None, "This experiment is no longer in the course.")
            return _render_start(request, form, status=400)
        lesson, exp = found
        config = next(iter(exp.configs().values()))
        experiment = exp.run_message(
            answer=request.POST.get("prediction"),
            lesson_url=reverse("course:lesson", args=[lesson.slug]),
        )
    owner = request.session.get("lab_owner") or secrets.token_urlsafe(24)
    lab_id = "".join(secrets.choice(LAB_ID_ALPHABET) for _ in range(8))
    try:
        client.lab_create(
            lab_id=lab_id,
            owner=owner,
            config=config,
            address=client_address(request),
            experiment=experiment,
        )
    except LabHostUnavailable as exc:
        return _render_start(request, form, error=str(exc), status=503)
    except LabStartsLimited as exc:
        response = _render_start(request, form, error=str(exc), status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except LabRefused as exc:
        return _render_start(request, form, error=str(exc), status=409)
    request.session["lab_owner"] = owner
    request.session["labs"] = [lab_id, *request.session.get("labs", [])][:RECENT_LABS]
    if experiment is not None:
        progress_record_experiment(
            session=request.session, slug=lesson.slug, experiment=experiment["slug"]
        )
        experiment_started(
            session=request.session,
            lab_id=lab_id,
            lesson_slug=lesson.slug,
            experiment_slug=experiment["slug"],
            prediction=request.POST.get("prediction"),
        )
    return redirect("playground:lab_detail", lab_id=lab_id)


@require_safe
@vary_on_headers("HX-Request")
def lab_detail(request: HtmxHttpRequest, lab_id: str) -> HttpResponse:
    if request.htmx.boosted:
        return _full_page_load(request)
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
        return render(
            request, "playground/unavailable.html", {"reason": reason, "lab_id": lab_id}, status=404
        )
    if not record.owned_by(owner):
        reason = "This lab belongs to another browser session. Start one of your own."
        return render(
            request, "playground/unavailable.html", {"reason": reason, "lab_id": lab_id}, status=403
        )
    return render(
        request,
        "playground/lab.html",
        {"lab_id": lab_id, "mode": record.mode, "ws_path": f"/ws/labs/{lab_id}/"},
    )


def client_address(request: HttpRequest) -> str:
    """The address of the client, which the playground's per-address limits count by.

    The peer of the connection (REMOTE_ADDR), unless that peer is one of
    settings.TRUSTED_PROXIES: then the last address X-Forwarded-For names that is not a
    trusted proxy itself (each proxy appends the peer it saw; whatever a client wrote in the
    header comes before, so it cannot choose its own address). daphne's --proxy-headers is
    not used for this: it believes the header from any peer, and its first address.
    """
    peer = str(request.META.get("REMOTE_ADDR") or "")
    trusted = settings.TRUSTED_PROXIES
    if not trusted or not _within(peer, trusted):
        return peer
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a proxy of ours writes addresses: this hop is not one of ours
        if not any(address in network for network in trusted):
            return str(address)
    return hops[0] if hops else peer


def _within(address: str, networks: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


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


def _full_page_load(request: HtmxHttpRequest) -> HttpResponse:
    """Playground pages bring their own stylesheets and scripts (charts, the socket), which a
    boosted swap of <body> would not load in order: ask htmx for a real navigation instead."""
    return HttpResponseClientRedirect(request.get_full_path())
