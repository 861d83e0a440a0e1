"""The start form of a lab. Its limits are the lab engine's own, so the two cannot drift."""

from __future__ import annotations

from typing import Any

from django import forms

from playground.lab.config import MAX_RATE, MAX_USERS, MAX_WORKERS, MIN_RATE


def start_initial(mode: str | None) -> dict[str, Any]:
    """The start form as a link asks for it (`/playground/?mode=stateless`): a stateless lab
    starts with sticky sessions off, since it needs none (static/js/start.js does the same
    when the learner switches the mode, until they set sticky sessions themselves)."""
    if mode == "stateless":
        return {"mode": "stateless", "sticky": False}
    return {}


class LabStartForm(forms.Form):
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

    def lab_config(self) -> dict[str, Any]:
        """The settings the lab host is asked to start the lab with (JSON-ready)."""
        data = self.cleaned_data
        return {
            "mode": data["mode"],
            "workers": data["workers"],
            "users": data["users"],
            "rate": float(data["rate"]),
            "sticky": data["sticky"],
        }
