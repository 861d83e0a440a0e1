"""Conditions over a run's measured figures (runscenario's JSON keys): what an experiment
checks and how a prediction is judged. `sessions_lost > 0 and kills.0.requests_in_flight
>= 1`, `three.requests_ok >= 2 * one.requests_ok`. No Django imports here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# A clause: TERM OP TERM; a TERM is a number, a figure, or N * figure.
_CLAUSE_RE = re.compile(
    r"^\s*(?P<left>[\w.*\s-]+?)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<right>[\w.*\s-]+?)\s*$"
)
FIGURE_RE = re.compile(r"^[a-z_]+(?:\.[a-z0-9_-]+)*$")
MAX_CONDITION_CHARS = 400
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
Term = tuple[float, str | None]  # (factor, figure): a number when figure is None


@dataclass(frozen=True)
class Condition:
    text: str
    clauses: tuple[tuple[Term, str, Term], ...]

    def holds(self, figures: Mapping[str, Any]) -> bool:
        """Whether it holds on a run's figures; KeyError names a figure the run lacks."""
        return all(
            OPS[op](_value(left, figures), _value(right, figures))
            for left, op, right in self.clauses
        )

    @property
    def figures(self) -> list[str]:
        """The figures it reads, in order."""
        return [t[1] for left, _, right in self.clauses for t in (left, right) if t[1]]


def figure_value(path: str, figures: Mapping[str, Any]) -> float:
    """A number of the report (`kills.0.at`); KeyError when there is none."""
    value: Any = figures
    for part in path.split("."):
        if isinstance(value, list):
            try:
                value = value[int(part)]
            except (ValueError, IndexError):
                raise KeyError(path) from None
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise KeyError(path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KeyError(f"{path} is not a number")
    return float(value)


def _value(term: Term, figures: Mapping[str, Any]) -> float:
    factor, figure = term
    return factor if figure is None else factor * figure_value(figure, figures)


def _term(text: str) -> Term:
    text = text.strip()
    factor, star, rest = text.partition("*")
    if star:
        return float(factor), _figure(rest.strip())
    try:
        return float(text), None
    except ValueError:
        return 1.0, _figure(text)


def _figure(text: str) -> str:
    if not FIGURE_RE.match(text):
        raise ValueError(f"{text!r} is not a figure such as sessions_lost or kills.0.at")
    return text


def condition_parse(text: str) -> Condition:
    """ValueError with the reason when it is not a condition."""
    text = str(text)
    if len(text) > MAX_CONDITION_CHARS:
        raise ValueError(f"a condition has at most {MAX_CONDITION_CHARS} characters")
    clauses = []
    for clause in text.split(" and "):
        match = _CLAUSE_RE.match(clause)
        if match is None:
            raise ValueError(f"{clause.strip()!r} is not FIGURE OP VALUE (e.g. sessions_lost > 0)")
        clauses.append((_term(match["left"]), match["op"], _term(match["right"])))
    return Condition(text=text, clauses=tuple(clauses))
