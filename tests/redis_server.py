"""pytest plugin (`-p tests.redis_server` in pyproject): the test run's own Redis server.

Settings only read REDIS_URL; something has to start the server first. pytest-django
imports the settings in its `pytest_load_initial_conftests`, so the server starts in the
same hook, earlier (tryfirst), and stops when pytest unconfigures. A REDIS_URL already set
is used as it is. The server also dies with this process (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os

import pytest

from config import embedded_redis


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    if os.environ.get("REDIS_URL"):
        return
    server = embedded_redis.start()
    os.environ["REDIS_URL"] = server.url

    def stop() -> None:
        os.environ.pop("REDIS_URL", None)
        server.stop()

    early_config.add_cleanup(stop)
