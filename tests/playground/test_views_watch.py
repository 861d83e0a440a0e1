"""Sharing a lab with a class through the pages: Share / Stop sharing, the watch page, its
refusals (unknown, ended, malformed, too many lookups), on the real `runlabs` host."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from playground import labclient, labprotocol

from .conftest import HostProcess

VALID = {"mode": "stateful", "workers": "1", "users": "3", "rate": "10", "sticky": "on"}
CONTROL_NAMES = ("Kill", "Stop", "Pause", "Resume", "Restart", "Remove")


def started_lab(client: Client) -> str:
    response = client.post("/playground/labs/", VALID)
    assert response.status_code == 302, response.content
    return response["Location"].rstrip("/").rsplit("/", 1)[-1]


def test_the_owner_shares_a_lab_and_the_class_watches_it_without_controls(
    client: Client, labhost_process: HostProcess
) -> None:
    lab_id = started_lab(client)
    page = client.get(f"/playground/labs/{lab_id}/").content.decode()
    assert re.search(r"<button[^>]*>\s*Share with the class\s*</button>", page)
    assert "data-watch-url" not in page

    shared = client.post(f"/playground/labs/{lab_id}/share/", headers={"HX-Request": "true"})
    assert shared.status_code == 200
    fragment = shared.content.decode()
    found = re.search(r"<a data-watch-url[^>]*>([^<]+)</a>", fragment)
    assert found is not None
    url = found.group(1)
    assert re.fullmatch(r"http://testserver/watch/[A-Z2-9]{4}-[A-Z2-9]{4}/", url)
    assert re.search(r"<button[^>]*>\s*Stop sharing\s*</button>", fragment)
    # After a reload the owner still sees the same link.
    assert url in client.get(f"/playground/labs/{lab_id}/").content.decode()

    watcher = Client()
    path = url.removeprefix("http://testserver")
    watch = watcher.get(path)
    assert watch.status_code == 200
    html = watch.content.decode()
    code = path.strip("/").rsplit("/", 1)[-1].replace("-", "")
    assert f'ws-connect="/ws/watch/{code}/"' in html
    assert "/ws/labs/" not in html and "Share with the class" not in html
    # No control: no button at all whose name starts with an action on the lab.
    for button in re.findall(r"<button[^>]*>(.*?)</button>", html, re.S):
        name = re.sub(r"<[^>]+>|\s+", " ", button).strip()
        assert not name.startswith(CONTROL_NAMES), name
    # The one command a watcher's page may send: an answer to the class's question.
    assert re.findall(r"data-command='([^']*)'", html) == ['{"action": "answer"}']
    owner = client.session["lab_owner"]
    assert owner not in html and owner not in str(watcher.cookies)
    assert watcher.session.session_key  # one answer per session needs a session

    # Typed by hand: any case, no dash, through the /watch/ form.
    typed = watcher.get("/watch/", {"code": code.lower()})
    assert typed.status_code == 302 and typed["Location"] == path

    stopped = client.post(f"/playground/labs/{lab_id}/unshare/", headers={"HX-Request": "true"})
    assert re.search(r"<button[^>]*>\s*Share with the class\s*</button>", stopped.content.decode())
    ended = watcher.get(path)
    assert ended.status_code == 410
    assert "The owner stopped sharing this lab." in ended.content.decode()


def test_only_the_owner_may_share_and_a_plain_post_comes_back_to_the_lab(
    client: Client, labhost_process: HostProcess
) -> None:
    lab_id = started_lab(client)
    assert Client().post(f"/playground/labs/{lab_id}/share/").status_code == 404
    assert client.get(f"/playground/labs/{lab_id}/share/").status_code == 405
    plain = client.post(f"/playground/labs/{lab_id}/share/")
    assert plain.status_code == 302 and plain["Location"] == f"/playground/labs/{lab_id}/"
    assert "data-watch-url" in client.get(plain["Location"]).content.decode()


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/watch/ABCD-2345/", 404, "No lab is shared under this code."),
        ("/watch/nonsense/", 404, "No lab is shared under this code."),
        ("/watch/?code=12", 400, "That is not a watch code"),
        ("/watch/", 200, "Watch code"),
    ],
)
def test_a_code_that_names_no_shared_lab_gets_a_clear_page(
    client: Client, labhost_process: HostProcess, path: str, status: int, says: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert says in response.content.decode()


def test_watch_codes_tried_from_one_address_are_limited(
    labhost_process: HostProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(labclient, "WATCH_LOOKUPS", labclient.StartLimits(per_window=3, window=60))
    guesser = Client(REMOTE_ADDR="203.0.113.77")
    for _ in range(3):
        assert guesser.get("/watch/ABCD-2345/").status_code == 404
    limited = guesser.get("/watch/ABCD-2346/")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert Client(REMOTE_ADDR="203.0.113.78").get("/watch/ABCD-2345/").status_code == 404


def test_codes_are_read_aloud_in_two_groups_and_parsed_as_typed() -> None:
    assert labprotocol.watch_code_display("K7QM4RTW") == "K7QM-4RTW"
    for typed in ("K7QM-4RTW", "k7qm4rtw", " k7qm 4rtw "):
        assert labprotocol.watch_code_parse(typed) == "K7QM4RTW"
    for bad in ("K7QM-4RT", "K7QM-4RT0", "K7QM4RTWX", "", "../../etc"):
        assert labprotocol.watch_code_parse(bad) is None
    assert len(labprotocol.WATCH_ALPHABET) ** labprotocol.WATCH_CODE_LENGTH > 5 * 10**11


def test_the_presenter_view_is_the_owners_with_the_join_code_and_its_shortcuts(
    client: Client, labhost_process: HostProcess
) -> None:
    lab_id = started_lab(client)
    path = f"/playground/labs/{lab_id}/present/"
    assert Client().get(path).status_code == 403
    before = client.get(path).content.decode()
    assert "data-present" in before and "Share the lab (below)" in before
    client.post(f"/playground/labs/{lab_id}/share/")
    page = client.get(path).content.decode()
    code = re.search(r'class="pg-join-code">([A-Z2-9]{4}-[A-Z2-9]{4})<', page)
    assert code is not None and f"/watch/{code.group(1)}/" in page
    assert "<kbd>k</kbd> then a number" in page
    assert re.search(r"<button[^>]*>\s*Ask the class\s*</button>", page)
    assert f'ws-connect="/ws/labs/{lab_id}/"' in page  # the owner's own socket and controls


def test_a_school_can_allow_more_watch_lookups_per_address(
    labhost_process: HostProcess, settings: Any
) -> None:
    # A class of more than 120 behind one NAT address opens its link within a minute.
    settings.PLAYGROUND_WATCH_LOOKUPS = {"per_window": 2, "window": 60.0}
    guesser = Client(REMOTE_ADDR="203.0.113.79")
    for _ in range(2):
        assert guesser.get("/watch/ABCD-2345/").status_code == 404
    limited = guesser.get("/watch/ABCD-2346/")
    assert limited.status_code == 429 and "at most 2 every 60 seconds" in limited.content.decode()
