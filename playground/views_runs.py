"""Saved runs of a lab: save one (its owner), the read-only permalink anyone may open, its
JSON and CSV exports, and deleting it (its owner or staff). Thin: playground.runs keeps
the rules, the lab host (through labclient) the recording.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from playground import labclient as client
from playground import runs
from playground.labclient import LabEnded, LabHostUnavailable, LabRefused
from playground.models import LabRun
from playground.views import HtmxHttpRequest, full_page_load, unavailable_page


@require_POST
def run_save(request: HtmxHttpRequest, lab_id: str) -> HttpResponse:
    """Save the lab's run so far (its owner only) and go to its permalink."""
    owner = request.session.get("lab_owner")
    try:
        if not owner:
            raise LabRefused("This lab belongs to another browser session.")
        recording = client.lab_recording(lab_id=lab_id, owner=owner)
        run = runs.run_save(recording=recording, owner=owner, lab_id=lab_id)
    except LabEnded as exc:
        return unavailable_page(request, lab_id, str(exc), status=404)
    except LabRefused as exc:
        return unavailable_page(request, lab_id, str(exc), status=403)
    except LabHostUnavailable as exc:
        return unavailable_page(request, lab_id, str(exc), status=503)
    except runs.RunTooLarge as exc:
        return unavailable_page(request, lab_id, str(exc), status=413)
    return redirect("playground:run_detail", slug=run.slug)


@require_safe
@vary_on_headers("HX-Request")
def run_detail(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """A saved run, read-only, for anyone with the link: a timeline to scrub, its charts."""
    if request.htmx.boosted:
        return full_page_load(request)
    run = _run_kept(slug)
    if run is None:
        return _run_gone(request)
    context = {
        "run": run,
        "frame": run.frames[-1] if run.frames else None,
        "seconds": run.frames[-1]["t"] if run.frames else 0,
        "marks": runs.run_marks(run.events),
        "can_delete": _may_delete(request, run),
        "days": runs.run_days(),
    }
    return render(request, "playground/run.html", context)


@require_safe
def run_json(request: HttpRequest, slug: str) -> HttpResponse:
    run = _run_kept(slug)
    if run is None:
        return _run_gone(request)
    response = JsonResponse(runs.run_export(run))
    response["Content-Disposition"] = f'attachment; filename="run-{run.slug}.json"'
    return response


@require_safe
def run_csv(request: HttpRequest, slug: str) -> HttpResponse:
    run = _run_kept(slug)
    if run is None:
        return _run_gone(request)
    response = HttpResponse(runs.run_csv(run), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.slug}.csv"'
    return response


@require_POST
def run_delete(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """Its owner (the session that saved it) or staff may delete a run; no one else."""
    run = get_object_or_404(LabRun, slug=slug)
    if not _may_delete(request, run):
        reason = "Only the browser session that saved this run, or staff, may delete it."
        return unavailable_page(request, run.lab_id, reason, status=403)
    run.delete()
    return redirect("playground:index")


def _run_kept(slug: str) -> LabRun | None:
    """The run, or None once it has expired (404 if there never was one)."""
    run = get_object_or_404(LabRun, slug=slug)
    return None if run.expires <= timezone.now() else run


def _run_gone(request: HttpRequest) -> HttpResponse:
    return render(request, "playground/run_gone.html", {"days": runs.run_days()}, status=410)


def _may_delete(request: HttpRequest, run: LabRun) -> bool:
    return bool(getattr(request.user, "is_staff", False)) or runs.run_owned_by(
        run, request.session.get("lab_owner")
    )
