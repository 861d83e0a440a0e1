"""The interview framework as a decision tree: three questions, one recommendation per path.

Pure data and a pure function of the query string, so every state of the walk has its
own shareable URL (/decide/?external=yes&scale=yes&temporary=session). No Django here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    consequence: str  # what the framework concludes from this answer
    # The same conclusion once question 1 said the state must stay in the process.
    stateful_consequence: str = ""

    def consequence_for(self, answers: Mapping[str, str]) -> str:
        if answers.get("external") == "no" and self.stateful_consequence:
            return self.stateful_consequence
        return self.consequence


@dataclass(frozen=True)
class Question:
    key: str
    number: int
    text: str
    help: str
    options: tuple[Option, ...]

    def option(self, value: str) -> Option | None:
        return next((o for o in self.options if o.value == value), None)


QUESTIONS: tuple[Question, ...] = (
    Question(
        key="external",
        number=1,
        text="Can the state live outside the process?",
        help=(
            "Could a worker read and write it in a shared store (Redis, a database) on each "
            "request, or must it stay in the memory of one process, like an open WebSocket "
            "or a game match updated 60 times a second?"
        ),
        options=(
            Option(
                "yes",
                "Yes, it can live in an external store",
                "Stateless service with an external store (Redis, a database).",
            ),
            Option(
                "no",
                "No, it must stay in the process",
                "Stateful service: the process that holds the state serves its clients.",
            ),
        ),
    ),
    Question(
        key="scale",
        number=2,
        text="Do you need to scale horizontally?",
        help=(
            "Will you add and remove workers as load changes, and survive one dying? Or is "
            "one instance (or a fixed few) enough for the foreseeable load?"
        ),
        options=(
            Option(
                "yes",
                "Yes, many interchangeable workers",
                "Stateless wins: any worker can serve any request.",
            ),
            Option(
                "no",
                "No, limited scaling is fine",
                "Stateful is simpler: nothing to externalize, no store to run.",
            ),
        ),
    ),
    Question(
        key="temporary",
        number=3,
        text="Is the state temporary?",
        help=(
            "Session data (a cart, a login, a match in progress) may expire or be rebuilt. "
            "Persistent data (orders, accounts) must outlive any process."
        ),
        options=(
            Option(
                "session",
                "Temporary: session data",
                "Keep it in Redis with a TTL, so it expires on its own.",
                "Losing it in a crash is survivable: clients reconnect and rebuild it.",
            ),
            Option(
                "persistent",
                "Persistent: it must last",
                "Keep it in a database, which is durable and transactional.",
                "The process must write it to durable storage as it changes.",
            ),
        ),
    ),
)
QUESTION_KEYS = tuple(q.key for q in QUESTIONS)


@dataclass(frozen=True)
class Recommendation:
    title: str
    summary: str
    reasons: tuple[str, ...]
    lessons: tuple[str, ...]  # slugs; only those that exist are linked
    experiment: str  # what to try in the playground


@dataclass(frozen=True)
class Step:
    question: Question
    option: Option
    consequence: str
    # The query string that stops just before this question: "change this answer".
    change_query: str


@dataclass(frozen=True)
class Decision:
    steps: tuple[Step, ...]
    next_question: Question | None
    recommendation: Recommendation | None
    answers: Mapping[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def query(self) -> str:
        return urlencode(self.answers)


_STATELESS_EXPERIMENT = (
    "In the playground, switch to stateless mode, fill a few carts, then kill a worker: "
    "every cart survives because it lives in Redis."
)
_STATEFUL_EXPERIMENT = (
    "In the playground, switch to stateful mode with sticky sessions, fill a few carts, then "
    "kill the worker that holds them: watch those carts vanish while the others stay."
)

RECOMMENDATIONS: dict[tuple[str, str, str], Recommendation] = {
    ("yes", "yes", "session"): Recommendation(
        title="Stateless workers, sessions in Redis with a TTL",
        summary="The default for web services, and the pattern this course site uses.",
        reasons=(
            "The state can live outside the process, so workers keep none of it.",
            "You need to scale out: any worker serves any request, the balancer needs no "
            "sticky sessions, and a dead worker loses nothing.",
            "Session data is temporary: Redis is fast, shared by every worker, and its TTL "
            "expires abandoned sessions without a cleanup job.",
        ),
        lessons=("externalize-state", "stateless-up-close", "how-this-site-is-built"),
        experiment=_STATELESS_EXPERIMENT,
    ),
    ("yes", "yes", "persistent"): Recommendation(
        title="Stateless workers, data in a database",
        summary="Scale the workers freely; the database is the one place that must be durable.",
        reasons=(
            "The state can live outside the process, so workers keep none of it.",
            "You need to scale out: interchangeable workers behind any load balancer.",
            "The data must last: a database gives durability and transactions. Add a cache "
            "(Redis, Memcached) only when reads become the bottleneck.",
        ),
        lessons=("externalize-state", "stateless-up-close", "when-each-wins"),
        experiment=_STATELESS_EXPERIMENT,
    ),
    ("yes", "no", "session"): Recommendation(
        title="A single stateful process is simplest; externalize to Redis when you grow",
        summary="Limited scaling lets you keep sessions in memory, if losing them on restart "
        "is acceptable.",
        reasons=(
            "The state could live outside, but nothing forces it to yet.",
            "Limited scaling is fine, and a stateful process is simpler: no store to run, "
            "no round trip per request.",
            "Session data is temporary, so a restart costs users a re-login or a cart. When "
            "that stops being acceptable, or you need a second worker, move it to Redis "
            "with a TTL.",
        ),
        lessons=("when-each-wins", "stateful-up-close", "externalize-state"),
        experiment=_STATEFUL_EXPERIMENT,
    ),
    ("yes", "no", "persistent"): Recommendation(
        title="One simple service, with its data in a database",
        summary="Keep the process simple, but never keep lasting data only in memory.",
        reasons=(
            "The state can live outside the process, and lasting data must: a process can "
            "die at any time.",
            "Limited scaling is fine, so a single instance (or a small fixed number) is "
            "enough and stateful conveniences such as an in-memory cache are harmless.",
            "Persistent data belongs in a database; the process can then be restarted or "
            "replaced without losing anything.",
        ),
        lessons=("when-each-wins", "externalize-state", "comparison"),
        experiment=_STATEFUL_EXPERIMENT,
    ),
    ("no", "yes", "session"): Recommendation(
        title="Stateful servers with sticky routing, and a failover plan",
        summary="The shape of chat and WebSocket servers: scale by partitioning clients.",
        reasons=(
            "The state must stay in the process (an open connection, a live match).",
            "You still need to scale out: route each client to the server that holds its "
            "state (sticky sessions, consistent hashing) and add servers for new clients.",
            "The state is temporary, so on failover clients reconnect to another server and "
            "rebuild it. Explain that path: it is the first interview follow-up.",
        ),
        lessons=("stateful-up-close", "when-each-wins", "real-world-examples"),
        experiment=_STATEFUL_EXPERIMENT,
    ),
    ("no", "yes", "persistent"): Recommendation(
        title="Partitioned stateful servers that checkpoint to durable storage",
        summary="Actors, game worlds and workflow engines: state in memory, safety on disk.",
        reasons=(
            "The state must stay in the process for speed or because it is a live object.",
            "You need to scale out: partition the state across servers (actor frameworks "
            "such as Orleans or Akka, Kubernetes StatefulSets) and route by key.",
            "The state must last, so each server snapshots or logs it to a database, the way "
            "Redis persists its memory, and a replacement restores it after a failure.",
        ),
        lessons=("stateful-up-close", "real-world-examples", "when-each-wins"),
        experiment=_STATEFUL_EXPERIMENT,
    ),
    ("no", "no", "session"): Recommendation(
        title="One stateful server: the simplest thing that works",
        summary="Keep the state in memory and accept that a restart drops it.",
        reasons=(
            "The state must stay in the process.",
            "Limited scaling is fine, so there is no balancer to make sticky and no state "
            "to share.",
            "The state is temporary: after a crash or deploy, clients start again. Say so "
            "explicitly when you present the design.",
        ),
        lessons=("stateful-up-close", "the-tradeoff", "comparison"),
        experiment=_STATEFUL_EXPERIMENT,
    ),
    ("no", "no", "persistent"): Recommendation(
        title="One stateful server that persists what it holds",
        summary="In-memory speed, with snapshots or an append-only log for durability.",
        reasons=(
            "The state must stay in the process.",
            "Limited scaling is fine, so one server holds everything.",
            "The state must last, so write it to disk or a database as it changes (like "
            "Redis's snapshots and append-only file) and plan how a restart reloads it.",
        ),
        lessons=("stateful-up-close", "real-world-examples", "the-tradeoff"),
        experiment=_STATEFUL_EXPERIMENT,
    ),
}


def decision_make(*, params: Mapping[str, Sequence[str]]) -> Decision:
    """The state of the walk for a query string (a mapping of key to its list of values).

    Answers count in question order. An unknown value, a repeated key or an answer to a
    later question without the earlier ones means the URL is not a state of the walk:
    the result starts over with an error message. Other keys are ignored.
    """
    answers: dict[str, str] = {}
    steps: list[Step] = []
    missing: Question | None = None
    for question in QUESTIONS:
        values = list(params.get(question.key, []))
        if not values:
            missing = missing or question
            continue
        if len(values) > 1:
            return _start_over(f"Question {question.number} was answered more than once.")
        if missing is not None:
            return _start_over(
                f"Question {question.number} was answered before question {missing.number}."
            )
        option = question.option(values[0])
        if option is None:
            allowed = " or ".join(repr(o.value) for o in question.options)
            shown = values[0][:40]
            return _start_over(
                f"{shown!r} is not an answer to question {question.number} (expected {allowed})."
            )
        steps.append(
            Step(
                question=question,
                option=option,
                consequence=option.consequence_for(answers),
                change_query=urlencode(answers),
            )
        )
        answers[question.key] = option.value
    if missing is not None:
        return Decision(
            steps=tuple(steps), next_question=missing, recommendation=None, answers=answers
        )
    key = (answers["external"], answers["scale"], answers["temporary"])
    return Decision(
        steps=tuple(steps), next_question=None, recommendation=RECOMMENDATIONS[key], answers=answers
    )


def _start_over(message: str) -> Decision:
    return Decision(
        steps=(),
        next_question=QUESTIONS[0],
        recommendation=None,
        answers={},
        error=f"{message} Let's start over.",
    )


def all_paths() -> list[dict[str, str]]:
    """Every complete set of answers, for tests and for checking the recommendations."""
    paths: list[dict[str, str]] = [{}]
    for question in QUESTIONS:
        paths = [{**p, question.key: o.value} for p in paths for o in question.options]
    return paths


def lessons_linked(recommendation: Recommendation, *, exists: Callable[[str], bool]) -> list[str]:
    return [slug for slug in recommendation.lessons if exists(slug)]
