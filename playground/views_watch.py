"""Sharing a lab with a class: the owner's Share / Stop sharing, and the watch pages.

Thin, like the other playground views: the lab host keeps the watch code with the lab (and
renews it in Redis with the lab's record); these views ask it to share or stop, and look a
code up. A watcher's page carries no owner token: it reaches the lab only through its code.
"""

from __future__ import annotations

import dataclasses

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from playground import labclient as client
from playground import labprotocol
from playground.addresses import client_address
from playground.labclient import LabHostUnavailable, LabRecord, LabRefused, LabStartsLimited


def share_context(request: HttpRequest, record: LabRecord) -> dict[str, object]:
    """What the owner's share panel shows: the code, read aloud as ABCD-EFGH, and the link."""
    if not record.watch:
        return {"lab_id": record.lab_id, "watch_code": "", "watch_url": ""}
    path = reverse("watch", args=[labprotocol.watch_code_display(record.watch)])
    # The address students type: the machine's LAN address when make run serves a class
    # (HOST=0.0.0.0), else the one the owner's browser used.
    public = settings.PLAYGROUND_PUBLIC_URL
    url = f"{public}{path}" if public else request.build_absolute_uri(path)
    return {
        "lab_id": record.lab_id,
        "watch_code": labprotocol.watch_code_display(record.watch),
        "watch_url": url,
    }


@require_POST
def lab_share(request: HttpRequest, lab_id: str) -> HttpResponse:
    return _share(request, lab_id, share=True)


@require_POST
def lab_unshare(request: HttpRequest, lab_id: str) -> HttpResponse:
    return _share(request, lab_id, share=False)


def _share(request: HttpRequest, lab_id: str, *, share: bool) -> HttpResponse:
    owner = request.session.get("lab_owner")
    record = client.lab_get(lab_id)
    if record is None or not record.owned_by(owner):
        reason = "This lab has ended, or it belongs to another browser session."
        return render(
            request, "playground/unavailable.html", {"reason": reason, "lab_id": lab_id}, status=404
        )
    error = ""
    try:
        code = client.lab_share(record=record, owner=str(owner), share=share)
    except (LabHostUnavailable, LabRefused) as exc:
        code, error = record.watch or None, str(exc)
    record = dataclasses.replace(record, watch=code or "")
    if not request.headers.get("HX-Request"):
        return redirect("playground:lab_detail", lab_id=lab_id)
    context = {**share_context(request, record), "share_error": error}
    return render(request, "playground/lab.html#share", context, status=503 if error else 200)


@require_safe
def watch_find(request: HttpRequest) -> HttpResponse:
    """/watch/: a form to type a code into (a class hears it read aloud)."""
    typed = request.GET.get("code", "")
    if typed:
        code = labprotocol.watch_code_parse(typed)
        if code is not None:
            return redirect("watch", code=labprotocol.watch_code_display(code))
        return render(
            request,
            "playground/watch_find.html",
            {
                "typed": typed[:40],
                "error": "That is not a watch code: it has 8 letters and digits.",
            },
            status=400,
        )
    return render(request, "playground/watch_find.html", {"typed": ""})


@require_safe
def watch(request: HttpRequest, code: str) -> HttpResponse:
    """/watch/<code>/: a shared lab, read-only, for anyone with its code."""
    parsed = labprotocol.watch_code_parse(code)
    try:
        client.watch_lookup_count(address=client_address(request))
    except LabStartsLimited as exc:
        response = _watch_unavailable(request, str(exc), status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    if parsed is None:
        return _watch_unavailable(request, "No lab is shared under this code.", status=404)
    try:
        record = client.watch_find(parsed)
    except client.WatchEnded as exc:
        return _watch_unavailable(request, str(exc), status=410)
    if record is None:
        return _watch_unavailable(request, "No lab is shared under this code.", status=404)
    # A watcher's socket finds the lab by its code, never by an owner token; one answer per
    # browser session in the class's polls needs a session, so it has one from here.
    if request.session.session_key is None:
        request.session["watching"] = True
    context = {
        "lab_id": record.lab_id,
        "mode": record.mode,
        "ws_path": f"/ws/watch/{parsed}/",
        "watching": True,
        "watch_code": labprotocol.watch_code_display(parsed),
    }
    return render(request, "playground/lab.html", context)


def _watch_unavailable(request: HttpRequest, reason: str, *, status: int) -> HttpResponse:
    return render(
        request, "playground/watch_find.html", {"reason": reason, "typed": ""}, status=status
    )
