"""Playground pages through Django's test client: the start form's contract, validation,
starting a lab on the real `runlabs` host, ownership, and a clear word when no host runs."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.test import Client

from course.models import ExperimentRecord, session_hash
from playground.labclient import address_key

from .conftest import HostProcess

VALID = {"mode": "stateful", "workers": "1", "users": "3", "rate": "10", "sticky": "on"}


@pytest.fixture
def no_host(settings: Any) -> None:
    settings.PLAYGROUND_FLEET = f"fleet-nobody-{uuid.uuid4().hex[:6]}"


def labels(html: str) -> dict[str, str]:
    """label text -> the id of the control it labels."""
    return {
        re.sub(r"\s+", " ", text).strip(): for_id
        for for_id, text in re.findall(r'<label for="([^"]+)"[^>]*>(.*?)</label>', html, re.S)
    }


def test_the_start_form_keeps_its_contract(client: Client, no_host: None) -> None:
    response = client.get("/playground/")
    assert response.status_code == 200
    html = response.content.decode()
    found = labels(html)
    for mode, value in (("Stateful", "stateful"), ("Stateless", "stateless")):
        control = re.search(rf'<input[^>]*id="{found[mode]}"[^>]*>', html)
        assert control is not None
        assert 'type="radio"' in control.group() and f'value="{value}"' in control.group()
    assert re.search(r'<button type="submit"[^>]*>\s*Start lab\s*</button>', html)
    for field in ("workers", "users", "rate", "sticky"):
        assert f'name="{field}"' in html
    assert 'min="1"' in html and 'max="6"' in html  # workers 1 to 6
    assert "Kill a worker" in html  # the suggested experiments


def test_a_stateless_lab_starts_with_sticky_sessions_off(client: Client, no_host: None) -> None:
    def checked(html: str, name: str, value: str | None = None) -> bool:
        pick = f'[^>]*value="{value}"' if value else ""
        control = re.search(rf'<input[^>]*name="{name}"{pick}[^>]*>', html)
        assert control is not None, (name, value)
        return " checked" in control.group()

    plain = client.get("/playground/").content.decode()
    assert checked(plain, "mode", "stateful") and checked(plain, "sticky")
    linked = client.get("/playground/?mode=stateless").content.decode()
    assert checked(linked, "mode", "stateless") and not checked(linked, "mode", "stateful")
    assert not checked(linked, "sticky")


def test_the_start_page_says_when_the_lab_host_is_not_running(
    client: Client, no_host: None
) -> None:
    html = client.get("/playground/").content.decode()
    assert "The lab host is not running: start it with <code>make run</code>" in html


def test_starting_without_a_lab_host_fails_fast_with_a_clear_message(
    client: Client, no_host: None
) -> None:
    response = client.post("/playground/labs/", VALID)
    assert response.status_code == 503
    assert "The lab host is not running: start it with make run" in response.content.decode()
    assert "lab_owner" not in client.session


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("workers", "7", "less than or equal to 6"),
        ("workers", "0", "greater than or equal to 1"),
        ("users", "51", "less than or equal to 50"),
        ("rate", "0.5", "greater than or equal to 1"),
        ("rate", "fast", "Enter a number"),
        ("mode", "stateless-ish", "Select a valid choice"),
    ],
)
def test_invalid_settings_re_render_the_form_with_errors(
    client: Client, no_host: None, field: str, value: str, says: str
) -> None:
    response = client.post("/playground/labs/", {**VALID, field: value})
    assert response.status_code == 400
    html = response.content.decode()
    assert says in html
    assert "Start lab" in html


def test_get_is_not_allowed_on_the_start_action(client: Client) -> None:
    assert client.get("/playground/labs/").status_code == 405


def test_a_started_lab_redirects_to_its_page_and_only_its_session_sees_it(
    client: Client, labhost_process: HostProcess
) -> None:
    response = client.post("/playground/labs/", VALID)
    assert response.status_code == 302
    match = re.fullmatch(r"/playground/labs/([a-z0-9]+)/", response["Location"])
    assert match is not None
    lab_id = match.group(1)
    assert lab_id in labhost_process.lab_ids()
    assert client.session["lab_owner"]
    assert client.session["labs"] == [lab_id]

    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert f'ws-connect="/ws/labs/{lab_id}/"' in html
    assert 'hx-ext="ws,morph,lab"' in html
    assert "<script>" not in html and " onclick=" not in html  # nothing inline (CSP)
    assert "script-src 'self'" in page["Content-Security-Policy"]
    # The start page now links to it.
    assert f"/playground/labs/{lab_id}/" in client.get("/playground/").content.decode()

    stranger = Client().get(response["Location"])
    assert stranger.status_code == 403
    assert "belongs to another browser session" in stranger.content.decode()


def test_a_lab_that_is_gone_says_so_and_offers_a_new_one(
    client: Client, labhost_process: HostProcess
) -> None:
    response = client.get("/playground/labs/gone1234/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "This lab has ended" in html
    assert 'href="/playground/"' in html and "Start a new lab" in html


def test_a_lab_page_without_a_lab_host_says_the_host_is_not_running(
    client: Client, no_host: None
) -> None:
    response = client.get("/playground/labs/gone1234/")
    assert response.status_code == 404
    assert "the lab host is not running" in response.content.decode()


def test_a_boosted_navigation_becomes_a_full_page_load(client: Client, no_host: None) -> None:
    response = client.get("/playground/", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert response["HX-Redirect"] == "/playground/"
    assert "HX-Request" in response["Vary"]


def test_starts_per_address_are_limited_and_other_addresses_still_served(
    labhost_process: HostProcess, settings: Any
) -> None:
    settings.PLAYGROUND_START_LIMITS = {"per_window": 2, "window": 60.0}
    # Addresses of this test alone (documentation range), so no other test's starts count.
    crowded = f"203.0.113.{uuid.uuid4().int % 250 + 1}"
    # Each start from a fresh client: dropping cookies does not reset the count.
    for _ in range(2):
        assert Client(REMOTE_ADDR=crowded).post("/playground/labs/", VALID).status_code == 302
    refused = Client(REMOTE_ADDR=crowded).post("/playground/labs/", VALID)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    html = refused.content.decode()
    assert "Too many labs were started from your network address" in html
    assert 'role="alert"' in html and "Start lab" in html  # the form again, with the reason
    other = f"2001:db8:{uuid.uuid4().int % 65000:x}::1"
    assert Client(REMOTE_ADDR=other).post("/playground/labs/", VALID).status_code == 302


def test_an_ipv6_client_is_counted_by_its_64_and_ipv4_as_itself() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("192.0.2.1") != address_key("192.0.2.2")


@pytest.mark.parametrize("path", ["/playground/", "/playground/labs/abcdefgh/"])
def test_a_redis_outage_is_an_outage_for_a_visitor_with_no_session(
    path: str, settings: Any
) -> None:
    """Not "the lab host is not running" nor "this lab has ended": both are read from Redis."""
    from config.embedded_redis import free_port

    down = f"redis://127.0.0.1:{free_port()}/0"
    settings.REDIS_URL = down
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": down}}
    response = Client(raise_request_exception=False).get(path)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "cannot reach Redis" in response.text


@pytest.mark.parametrize(
    ("peer", "forwarded", "address"),
    [
        ("203.0.113.7", "", "203.0.113.7"),  # no proxy: the peer
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # not our proxy: its header is ignored
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),  # our proxy: the client it saw
        ("127.0.0.1", "", "127.0.0.1"),
        # A client that writes its own header cannot choose its address: the proxy appends.
        ("127.0.0.1", "192.0.2.66, 198.51.100.1", "198.51.100.1"),
        # Two proxies of ours in a row (10.0.0.0/24, then loopback): the hop before them.
        ("127.0.0.1", "198.51.100.1, 10.0.0.5", "198.51.100.1"),
        ("127.0.0.1", "10.0.0.4, 10.0.0.5", "10.0.0.4"),
        ("127.0.0.1", "198.51.100.1, not-an-address", "127.0.0.1"),
        ("127.0.0.1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    settings: Any, peer: str, forwarded: str, address: str
) -> None:
    import ipaddress

    from django.test import RequestFactory

    from playground.addresses import client_address

    settings.TRUSTED_PROXIES = [
        ipaddress.ip_network("127.0.0.1"),
        ipaddress.ip_network("10.0.0.0/24"),
    ]
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == address


def test_bad_trusted_proxies_stop_the_settings_with_one_line(server_env: dict[str, str]) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**server_env, "TRUSTED_PROXIES": "127.0.0.1,10.0.0.300"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert done.stderr == (
        "settings: TRUSTED_PROXIES: '10.0.0.300' does not appear to be an IPv4 or IPv6 "
        "network (addresses or networks, comma-separated)\n"
    )


@pytest.mark.django_db
def test_an_experiment_starts_its_own_preset_and_counts_toward_progress(
    client: Client, labhost_process: HostProcess
) -> None:
    # The posted fields say one worker; the experiment's preset (3 workers) wins.
    response = client.post(
        "/playground/labs/", {**VALID, "experiment": "kill-stateful-worker", "prediction": "4"}
    )
    assert response.status_code == 302
    lab_id = response["Location"].rstrip("/").rsplit("/", 1)[1]
    assert lab_id in labhost_process.lab_ids()
    ran = client.session["progress"]["lessons"]["stateful-up-close"]["experiments"]
    assert ran == ["kill-stateful-worker"]
    # And anonymously in the database, with the prediction as given, until its outcome.
    record = ExperimentRecord.objects.get()
    assert (record.lab_id, record.lesson_slug, record.experiment_slug) == (
        lab_id,
        "stateful-up-close",
        "kill-stateful-worker",
    )
    assert record.prediction == "4" and record.finished_at is None
    assert record.session_hash == session_hash(str(client.session.session_key))


def test_an_experiment_no_longer_in_the_course_is_refused(
    client: Client, labhost_process: HostProcess
) -> None:
    response = client.post("/playground/labs/", {**VALID, "experiment": "no-such-experiment"})
    assert response.status_code == 400
    assert "no longer in the course" in response.content.decode()
    assert "lab_owner" not in client.session
