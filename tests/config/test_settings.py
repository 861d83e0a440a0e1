"""Settings only read the environment: importing them starts nothing, commands that need
no Redis run without REDIS_URL, and production names every variable it is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A hang guard for the subprocesses below, not a claim about their speed.
HANG_GUARD = 120


def _run(*args: str, settings: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REDIS_URL"))}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": settings, **env},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _run("manage.py", *args, settings="config.settings.prod", **env)


def test_importing_any_settings_module_starts_no_process() -> None:
    code = (
        "import importlib, pathlib\n"
        "for name in ('dev', 'test', 'prod'):\n"
        "    try:\n"
        "        importlib.import_module(f'config.settings.{name}')\n"
        "    except SystemExit:\n"  # prod stops on its missing variables
        "        pass\n"
        "children = [c for t in pathlib.Path('/proc/self/task').iterdir()\n"
        "            for c in (t / 'children').read_text().split()]\n"
        "print('children:', len(children))\n"
    )
    result = _run("-c", code, settings="config.settings.dev")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "children: 0"


def test_commands_that_need_no_redis_run_without_redis_url(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    superuser = {
        "DJANGO_SUPERUSER_USERNAME": "teacher",
        "DJANGO_SUPERUSER_EMAIL": "teacher@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "a long enough password 1234",
    }
    for command, extra in (
        (["check"], {}),
        (["migrate", "--noinput", "-v", "0"], {}),
        (["createsuperuser", "--noinput"], superuser),
        (["check_content"], {}),
    ):
        result = _run("manage.py", *command, settings="config.settings.dev", **env, **extra)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr


def test_the_lab_host_without_redis_url_names_it_without_a_traceback() -> None:
    result = _run("manage.py", "runlabs", settings="config.settings.dev")
    assert result.returncode == 1
    assert "set REDIS_URL" in result.stderr and "Traceback" not in result.stderr


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


def test_production_names_only_what_is_missing() -> None:
    result = _manage("check", DJANGO_SECRET_KEY="s" * 50, DJANGO_ALLOWED_HOSTS="example.com")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("set the environment variable(s) REDIS_URL")
    assert "Traceback" not in result.stderr


def test_make_runs_settings_have_debug_off_unless_asked_and_allow_loopback_and_host() -> None:
    code = (
        "from django.conf import settings\nprint(settings.DEBUG, sorted(settings.ALLOWED_HOSTS))\n"
    )
    plain = _run("-c", code, settings="config.settings.dev", DEBUG="", HOST="")
    asked = _run("-c", code, settings="config.settings.dev", DEBUG="1", HOST="course.lan")
    assert plain.stdout.strip() == "False ['127.0.0.1', '[::1]', 'localhost']", plain.stderr
    assert asked.stdout.strip() == ("True ['127.0.0.1', '[::1]', 'course.lan', 'localhost']"), (
        asked.stderr
    )


def test_a_classroom_run_allows_the_lan_addresses_and_knows_its_public_url() -> None:
    code = (
        "from django.conf import settings\n"
        "print(sorted(settings.ALLOWED_HOSTS), repr(settings.PLAYGROUND_PUBLIC_URL))\n"
    )
    classroom = _run(
        "-c",
        code,
        settings="config.settings.dev",
        HOST="0.0.0.0",
        LAN_ADDRESSES="192.168.1.23,2001:db8:1::23",
        PLAYGROUND_PUBLIC_URL="http://192.168.1.23:8000/",
    )
    alone = _run("-c", code, settings="config.settings.dev", HOST="", LAN_ADDRESSES="")
    assert classroom.stdout.strip() == (
        "['127.0.0.1', '192.168.1.23', '[2001:db8:1::23]', '[::1]', 'localhost']"
        " 'http://192.168.1.23:8000'"
    ), classroom.stderr
    assert alone.stdout.strip() == "['127.0.0.1', '[::1]', 'localhost'] ''", alone.stderr
