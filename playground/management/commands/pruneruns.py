"""`manage.py pruneruns`: delete the saved lab runs older than PLAYGROUND_RUN_DAYS.

Run it from cron or a systemd timer; saving a run prunes too, so a quiet site still
forgets its expired runs when someone saves one.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from playground.runs import run_prune


class Command(BaseCommand):
    help = "Delete the saved lab runs that have expired (PLAYGROUND_RUN_DAYS)."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = run_prune(now=timezone.now())
        self.stdout.write(f"{deleted} expired run(s) deleted.")
