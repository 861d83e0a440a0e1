"""`manage.py build_pygments_css`: write static/css/pygments.css (tests check it is current)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from course.markdown import pygments_stylesheet

PYGMENTS_CSS = Path(settings.BASE_DIR) / "static" / "css" / "pygments.css"


class Command(BaseCommand):
    help = "Write the code highlighting stylesheet for light and dark mode."

    def handle(self, *args: Any, **options: Any) -> None:
        PYGMENTS_CSS.write_text(pygments_stylesheet(), encoding="utf-8")
        self.stdout.write(f"wrote {PYGMENTS_CSS}")
