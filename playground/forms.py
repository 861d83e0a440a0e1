"""The start form of a lab. Its limits are the lab engine's own, so the two cannot drift."""

from __future__ import annotations

from typing import Any

from django import forms

from playground.lab.config import (
    MAX_RATE,
    MAX_STORE_LATENCY_MS,
    MAX_USERS,
    MAX_WORK_MS,
    MAX_WORKER_CONCURRENCY,
    MAX_WORKERS,
    MIN_RATE,
    MIN_SESSION_TTL,
    SESSION_TTL,
    WORK_MS,
    WORKER_CONCURRENCY,
)


def start_initial(mode: str | None) -> dict[str, Any]:
    """The start form as a link asks for it (`/playground/?mode=stateless`): a stateless lab
    starts with sticky sessions off, since it needs none (static/js/start.js does the same
    when the learner switches the mode, until they set sticky sessions themselves)."""
    if mode == "stateless":
        return {"mode": "stateless", "sticky": False}
    return {}


class LabStartForm(forms.Form):
    # How the start page lays them out: the first always shown, the rest under "More".
    BASIC_FIELDS = ("workers", "users", "rate")
    MORE_FIELDS = ("workload", "work_ms", "worker_concurrency", "persistence", "store_latency_ms")

    @property
    def more_open(self) -> bool:
        """Open "More settings" when one of them has an error: the learner must see it."""
        return any(name in self.errors for name in self.MORE_FIELDS)

    mode = forms.ChoiceField(
        choices=[("stateful", "Stateful"), ("stateless", "Stateless")],
        initial="stateful",
        widget=forms.RadioSelect,
    )
    workers = forms.IntegerField(
        min_value=1,
        max_value=MAX_WORKERS,
        initial=3,
        help_text=f"worker processes, 1 to {MAX_WORKERS}",
    )
    users = forms.IntegerField(
        label="Virtual users",
        min_value=1,
        max_value=MAX_USERS,
        initial=12,
        help_text="each logs in, fills a cart, checks out",
    )
    rate = forms.FloatField(
        label="Request rate",
        help_text="requests per second, all users together",
        min_value=MIN_RATE,
        max_value=MAX_RATE,
        initial=20,
    )
    sticky = forms.BooleanField(label="Sticky sessions", required=False, initial=True)
    workload = forms.ChoiceField(
        required=False,
        choices=[("shop", "Shop (HTTP requests)"), ("chat", "Chat (WebSocket connections)")],
        initial="shop",
        help_text="what the virtual users do",
    )
    work_ms = forms.FloatField(
        required=False,
        label="Work per request",
        min_value=0,
        max_value=MAX_WORK_MS,
        initial=WORK_MS,
        help_text="milliseconds of waiting (like a database call) in each request",
    )
    worker_concurrency = forms.IntegerField(
        required=False,
        label="Requests a worker serves at once",
        min_value=1,
        max_value=MAX_WORKER_CONCURRENCY,
        initial=WORKER_CONCURRENCY,
        help_text="1 is a synchronous worker; the rest wait in its queue",
    )
    persistence = forms.ChoiceField(
        required=False,
        label="Store persistence",
        choices=[("none", "none (a restart starts empty)"), ("aof", "aof (append-only file)")],
        initial="none",
        help_text="stateless labs: the lab's own Redis",
    )
    store_latency_ms = forms.FloatField(
        required=False,
        label="Store latency",
        min_value=0,
        max_value=MAX_STORE_LATENCY_MS,
        initial=0,
        help_text="milliseconds added to every store round trip",
    )

    # A lesson's experiment (its slug): the lab then runs its preset and steps.
    experiment = forms.SlugField(required=False, max_length=80)
    # Accepted from a lesson's experiment (its preset), not shown on the start page.
    balancing = forms.ChoiceField(
        required=False, choices=[("round_robin", "round robin"), ("least_conn", "least conn")]
    )
    store_jitter_ms = forms.FloatField(required=False, min_value=0, max_value=MAX_STORE_LATENCY_MS)
    handoff = forms.BooleanField(required=False)
    session_ttl = forms.FloatField(required=False, min_value=MIN_SESSION_TTL, max_value=SESSION_TTL)

    def lab_config(self) -> dict[str, Any]:
        """The settings the lab host is asked to start the lab with (JSON-ready)."""
        data = self.cleaned_data
        config: dict[str, Any] = {
            "mode": data["mode"],
            "workers": data["workers"],
            "users": data["users"],
            "rate": float(data["rate"]),
            "sticky": data["sticky"],
        }
        # Optional: a form posted without them (an older page, a script) gets the defaults.
        optional = {
            "workload": data["workload"] or None,
            "work_ms": data["work_ms"],
            "worker_concurrency": data["worker_concurrency"],
            "persistence": data["persistence"] or None,
            "store_latency_ms": data["store_latency_ms"],
            "balancing": data["balancing"] or None,
            "store_jitter_ms": data["store_jitter_ms"],
            "handoff": data["handoff"] or None,
            "session_ttl": data["session_ttl"],
        }
        return config | {k: v for k, v in optional.items() if v is not None}
