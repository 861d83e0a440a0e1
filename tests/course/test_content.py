"""The course's own lessons against the code they describe: figures that must not drift."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from playground import consumers
from playground.labhost import host

NUMBERS = {1: "a", 2: "two", 3: "three", 4: "four"}


def test_how_this_site_is_built_states_the_playgrounds_real_limits() -> None:
    text = " ".join(
        (Path(settings.BASE_DIR) / "content" / "how-this-site-is-built.md").read_text().split()
    )
    assert host.HostLimits.idle_timeout == 60
    assert "a lab closes a minute after its last viewer leaves" in text
    assert f"after {host.HostLimits.max_lifetime / 60:g} minutes in any case" in text
    assert f"at most {NUMBERS[host.HostLimits.max_per_owner]} labs per session" in text
    assert (
        f"heartbeat** key to Redis that expires after {NUMBERS[host.HEARTBEAT_TTL]} seconds" in text
    )
    assert f"has heard nothing for {NUMBERS[int(consumers.HOST_SILENT)]} seconds" in text
