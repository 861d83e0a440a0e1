"""The web tier's side of the lab host stays on its side."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import pytest

from playground.labclient import LabRefused, alab_create
from playground.labhost.limits import HostLimits
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


async def test_the_client_address_reaches_the_host_and_its_limit(start_labhost: Any) -> None:
    running = await start_labhost(limits=HostLimits(max_labs=10, max_per_address=1))
    config = {"mode": "stateful", "workers": 1, "users": 1, "rate": 5.0, "sticky": True}
    await alab_create(lab_id=uuid.uuid4().hex[:10], owner="a", config=config, address="192.0.2.1")
    assert [h.address for h in running.host.labs.values()] == ["192.0.2.1"]
    with pytest.raises(LabRefused, match="your network address"):
        await alab_create(
            lab_id=uuid.uuid4().hex[:10], owner="b", config=config, address="192.0.2.1"
        )
    await alab_create(lab_id=uuid.uuid4().hex[:10], owner="c", config=config, address="192.0.2.2")
    assert len(running.host.labs) == 2
