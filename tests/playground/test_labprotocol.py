"""The web tier's check of browser commands agrees with the engine and with the contract."""

from __future__ import annotations

import json
import re

import pytest

from playground import labprotocol
from playground.lab.config import SETTABLE
from tests.conftest import ROOT

A_VALUE = {bool: True, int: 3, float: 2.5, str: "least_conn"}


@pytest.mark.parametrize("knob", sorted(SETTABLE))
def test_set_accepts_every_knob_the_engine_can_change(knob: str) -> None:
    for kind in SETTABLE[knob]:
        text = json.dumps({"action": "set", knob: A_VALUE[kind]})
        assert labprotocol.command_parse(text) == {"action": "set", "value": {knob: A_VALUE[kind]}}


def test_set_refuses_anything_else() -> None:
    with pytest.raises(labprotocol.CommandError, match="cannot change 'workers'"):
        labprotocol.command_parse('{"action": "set", "workers": 2}')


def test_the_contract_names_exactly_the_knobs_of_set() -> None:
    contract = (ROOT / "docs" / "playground-contract.md").read_text()
    row = next(line for line in contract.splitlines() if line.startswith("| `set` |"))
    fields = row.split("|")[2]
    assert set(re.findall(r"`([a-z_]+)` \(", fields)) == set(SETTABLE)


def test_workers_past_999_can_be_named() -> None:
    for name in ("worker-1000", "worker-123456"):
        assert labprotocol.command_parse(json.dumps({"action": "kill", "worker": name})) == {
            "action": "kill",
            "worker": name,
        }


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = json.dumps({"action": "kill", "worker": "[[[[{{{{"})
    with pytest.raises(labprotocol.CommandError, match="needs a worker"):
        labprotocol.command_parse(text)
    with pytest.raises(labprotocol.CommandError, match="flat JSON object"):
        labprotocol.command_parse('{"action": "kill", "worker": [["worker-1"]]}')


def test_the_contract_names_every_close_code() -> None:
    contract = (ROOT / "docs" / "playground-contract.md").read_text()
    codes = {value for name, value in vars(labprotocol).items() if name.startswith("CLOSE_")}
    assert codes == {4403, 4404, 4410, 4429, 4503}
    for code in codes:
        assert f"\n| {code} |" in contract, code


def test_a_question_and_an_answer_are_flat_and_typed() -> None:
    ask = labprotocol.command_parse(
        json.dumps({"action": "ask", "question": "Q?", "kind": "choice", "choices": "a\nb"})
    )
    assert ask == {
        "action": "ask",
        "value": {"question": "Q?", "kind": "choice", "choices": "a\nb"},
    }
    with pytest.raises(labprotocol.CommandError, match="takes text"):
        labprotocol.command_parse(json.dumps({"action": "ask", "question": 3}))
    with pytest.raises(labprotocol.CommandError, match="Unexpected"):
        labprotocol.command_parse(json.dumps({"action": "ask", "question": "Q?", "owner": "x"}))
    assert labprotocol.command_parse('{"action": "answer", "value": 2}') == {
        "action": "answer",
        "value": 2,
    }
    for bad in ('"2"', "true", "null", "[2]", "1e400"):
        with pytest.raises(labprotocol.CommandError):
            labprotocol.command_parse(f'{{"action": "answer", "value": {bad}}}')
