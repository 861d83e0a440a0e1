"""How much one lab host takes on, and for how long: the one place these numbers are kept.

`runlabs` (whose --max-labs overrides max_labs), the docs' tests and the web tier read them
here. Standard library only: the web tier imports it without loading the host or the lab
engine.

Per client address (docs/playground-contract.md, "Limits", says why these numbers): a
class of 30 behind one NAT address, each learner with 2 labs, must not hit them; one
client dropping cookies must not take the whole host.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostLimits:
    max_labs: int = 50
    # Starting a third lab closes the owner's oldest one rather than refusing: a learner who
    # left a lab tab behind and starts again means "a new lab", not "explain my old tabs".
    max_per_owner: int = 2
    # Labs running per client address: a class of 30 learners behind one NAT address with 2
    # labs each. More than a default host holds: there the reserve below is what binds.
    max_per_address: int = 60
    # The share of max_labs kept for addresses with no running lab: an address that already
    # runs a lab cannot take the last 20% of the slots (10 of 50), so a newcomer finds room.
    address_reserve: float = 0.2
    idle_timeout: float = 60.0  # closed this long after its last viewer left
    max_lifetime: float = 30 * 60.0
    # A lab shared with a class (a watch link) lives longer: a 90-minute class and its
    # questions. It still closes a minute after its last viewer, owner or watcher, leaves.
    shared_lifetime: float = 120 * 60.0
    push_interval: float = 0.2  # 5 snapshots a second to every viewer
    viewer_lease: float = 30.0  # consumers re-attach every few seconds; silence means gone

    @property
    def reserved(self) -> int:
        """Slots only an address with no running lab may take."""
        return int(self.max_labs * self.address_reserve)


@dataclass(frozen=True)
class StartLimits:
    """Labs started per client address, counted by the web tier in Redis (so every web
    process counts the same starts): a class of 30 starting 2 labs each in the same minute
    fits; one client starting labs as fast as it can is held to one a second on average."""

    per_window: int = 60
    window: float = 60.0  # seconds
