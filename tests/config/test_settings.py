"""Production settings: `check --deploy` is clean, and a missing setting is a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REDIS_URL"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.prod", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_with_production_settings() -> None:
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SECRET_KEY="x" * 20 + "-production-secret-key-with-enough-entropy-1234567890",
        DJANGO_ALLOWED_HOSTS="course.example.com",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_missing_production_settings_are_named_without_a_traceback() -> None:
    result = _manage("check")
    assert result.returncode == 1
    assert "DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr
