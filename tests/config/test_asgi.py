"""config/asgi.py: the web process builds the course before it serves."""

from __future__ import annotations

from tests.conftest import python_check


def test_the_web_process_builds_the_course_before_it_serves(server_env: dict[str, str]) -> None:
    # daphne imports the application before it listens: the first page (and the proxy's
    # health check behind it) never waits for every lesson to render.
    code = (
        "import config.asgi; from course import snapshot;"
        "built = snapshot._current;"
        "assert built is not None and len(built.lessons) > 5, built;"
        "assert not built.errors, built.errors"
    )
    python_check(code, server_env)
