"""The house's rules (docs/architecture.md), checked on the source: which folder may
import which, and which modules stay free of Django."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Entry points that wire the apps in; every other module under config/ imports neither.
CONFIG_ENTRY_POINTS = {"config/asgi.py", "config/urls.py"}
# Run outside Django (child processes, the lab engine, the worker) or shared with them.
DJANGO_FREE = [
    "config.lifeline",
    "config.embedded_redis",
    "config.lan",
    "course.lessons",
    "course.markdown",
    "course.markdown_process",
    "course.quiz",
    "course.yaml_marks",
    "playground.lab.lab",
    "playground.labhost.host",
    "playground.labprotocol",
    "playground.worker.life",
]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_config_imports_neither_app_apart_from_its_entry_points() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in imported_modules(path)
            if name.split(".")[0] in {"course", "playground"}
        )
        for path in sorted((ROOT / "config").rglob("*.py"))
        if str(path.relative_to(ROOT)) not in CONFIG_ENTRY_POINTS
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize("module", DJANGO_FREE)
def test_module_loads_no_django(module: str) -> None:
    probe = (
        f"import sys, json; import {module}; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert not loaded & {"django", "channels", "daphne"}, module
