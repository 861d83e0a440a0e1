"""What the playground keeps in its database: saved lab runs, replayable by anyone with the
link until they expire. Redis holds nothing of them (it keeps nothing across a restart).
"""

from __future__ import annotations

import secrets

from django.db import models


def run_slug() -> str:
    """An unguessable permalink slug: 72 random bits, 12 URL-safe characters."""
    return secrets.token_urlsafe(9)


class LabRun(models.Model):
    """A recorded lab run (playground.labhost.recording), saved by the session that ran it."""

    slug = models.CharField(max_length=16, unique=True, default=run_slug)
    # sha256 of the owner token (labprotocol.owner_digest), as the lab registry keeps it.
    owner_digest = models.CharField(max_length=64)
    lab_id = models.CharField(max_length=16)
    mode = models.CharField(max_length=16)
    config = models.JSONField(default=dict)
    frames = models.JSONField(default=list)
    points = models.JSONField(default=list)
    events = models.JSONField(default=list)
    truncated = models.BooleanField(default=False)
    created = models.DateTimeField()
    expires = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.mode} run {self.slug} of lab {self.lab_id}"
