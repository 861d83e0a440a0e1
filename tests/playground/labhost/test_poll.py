"""A question to the class: what it takes, one answer per viewer, what every screen sees."""

from __future__ import annotations

from typing import Any

import pytest

from playground.labhost.poll import MAX_ANSWERS, MAX_NUMBER, Poll, PollError

NUMBER = {
    "question": "How many sessions will be lost?",
    "kind": "number",
    "figure": "sessions_lost",
}
CHOICE = {"question": "What happens?", "kind": "choice", "choices": "Nothing\n\nAll lost\n"}


def ask(spec: dict[str, Any], metrics: dict[str, Any] | None = None) -> Poll:
    return Poll.ask(seq=1, spec=spec, metrics=metrics or {})


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({**NUMBER, "question": "  "}, "cannot be empty"),
        ({**NUMBER, "question": "x" * 201}, "at most 200"),
        ({**NUMBER, "kind": "essay"}, "a choice or a number"),
        ({**NUMBER, "figure": ""}, "needs a counter"),
        ({**NUMBER, "figure": "__class__"}, "measures one of"),
        ({**CHOICE, "choices": "Only one"}, "2 to 6 choices"),
        ({**CHOICE, "choices": "\n".join("abcdefg")}, "2 to 6 choices"),
        ({**CHOICE, "choices": "ok\n" + "y" * 81}, "at most 80"),
        ("not a question", "needs its text"),
    ],
)
def test_a_question_that_cannot_be_asked_says_why(spec: Any, says: str) -> None:
    with pytest.raises(PollError, match=says):
        ask(spec)


def test_each_viewer_answers_once_and_only_while_it_is_open() -> None:
    poll = ask(CHOICE)
    assert poll.choices == ["Nothing", "All lost"]  # blank lines dropped
    assert poll.answer("a", 1) == "All lost"
    with pytest.raises(PollError, match="already answered"):
        poll.answer("a", 0)
    assert poll.answer("b", 0.0) == "Nothing"  # a whole float is an index too
    poll.close()
    with pytest.raises(PollError, match="closed"):
        poll.answer("c", 0)
    assert poll.answers == {"a": 1, "b": 0}


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        (CHOICE, 2),
        (CHOICE, -1),
        (CHOICE, 0.5),
        (CHOICE, True),
        (CHOICE, "0"),
        (NUMBER, "12"),
        (NUMBER, -1),
        (NUMBER, MAX_NUMBER + 1),
        (NUMBER, float("inf")),
        (NUMBER, float("nan")),
        (NUMBER, None),
        (NUMBER, [1]),
    ],
)
def test_a_hostile_answer_is_refused_and_counts_for_nothing(spec: Any, value: Any) -> None:
    poll = ask(spec)
    with pytest.raises(PollError):
        poll.answer("a", value)
    assert poll.answers == {}
    assert poll.describe({})["answered"] == 0


def test_answers_stop_at_the_cap() -> None:
    poll = ask(NUMBER)
    for viewer in range(MAX_ANSWERS):
        poll.answer(str(viewer), 3)
    with pytest.raises(PollError, match="all the answers"):
        poll.answer("one more", 3)


def test_every_screen_sees_counts_and_the_measured_answer_only_once_closed() -> None:
    poll = ask(NUMBER, metrics={"sessions_lost": 10})
    for viewer, value in (("viewer-a", 0), ("viewer-b", 5), ("viewer-c", 5), ("viewer-d", 40)):
        poll.answer(viewer, value)
    shown = poll.describe({"sessions_lost": 16})
    assert shown["answered"] == 4 and shown["median"] == 5
    assert shown["numbers"] == [
        {"value": 0.0, "count": 1, "percent": 25},
        {"value": 5.0, "count": 2, "percent": 50},
        {"value": 40.0, "count": 1, "percent": 25},
    ]
    assert shown["measured"] is None and "within" not in shown  # open: no spoiler
    poll.close()
    shown = poll.describe({"sessions_lost": 16})
    assert shown["measured"] == 6  # counted from when the question was asked
    assert shown["within"] == 2  # 5 and 5 are within 20% (or 1) of 6
    assert "viewer" not in repr(shown)  # counts only, never who


def test_a_choice_question_shows_each_choices_share() -> None:
    poll = ask({**CHOICE, "figure": "carts_lost"}, metrics={"carts_lost": 2})
    for viewer, value in (("a", 0), ("b", 1), ("c", 1)):
        poll.answer(viewer, value)
    poll.close()
    shown = poll.describe({"carts_lost": 5})
    assert [(c["text"], c["count"], c["percent"]) for c in shown["choices"]] == [
        ("Nothing", 1, 33),
        ("All lost", 2, 67),
    ]
    assert shown["measured"] == 3 and shown["figure_label"] == "carts lost"
