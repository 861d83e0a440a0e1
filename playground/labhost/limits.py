"""How much one lab host takes on, and for how long: the one place these numbers are kept.

`runlabs` (whose --max-labs overrides max_labs), the docs' tests and the web tier read them
here. Standard library only: the web tier imports it without loading the host or the lab
engine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostLimits:
    max_labs: int = 50
    # Starting a third lab closes the owner's oldest one rather than refusing: a learner who
    # left a lab tab behind and starts again means "a new lab", not "explain my old tabs".
    max_per_owner: int = 2
    idle_timeout: float = 60.0  # closed this long after its last viewer left
    max_lifetime: float = 30 * 60.0
    push_interval: float = 0.2  # 5 snapshots a second to every viewer
    viewer_lease: float = 30.0  # consumers re-attach every few seconds; silence means gone
