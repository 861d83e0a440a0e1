"""The web tier's side of the lab host stays on its side."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_web_tier_never_loads_the_lab_host_process(server_env: dict[str, str]) -> None:
    # Views, consumers and the ASGI application reach the host over Redis and the Channels
    # layer only: the host's code (and whatever only it uses) is never imported there; its
    # limits (plain numbers) may be.
    code = (
        "import sys, django; django.setup();"
        "import config.asgi, playground.views, playground.consumers, playground.labclient;"
        "loaded = sorted(m for m in sys.modules if m.startswith('playground.labhost.'));"
        "assert set(loaded) <= {'playground.labhost.limits'}, loaded"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=server_env, check=True, timeout=60)
