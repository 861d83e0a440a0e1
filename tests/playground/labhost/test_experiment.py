"""A lesson's experiment run by the lab host (playground.labhost.experiment): lab.create
carries it, the host does its steps on the real lab and the snapshot shows the measured
answer and the verdict on the prediction; bad experiments are refused with a reason."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer

from tests.playground.conftest import RunningHost, eventually

from .test_host import ask, web  # noqa: F401 - a fixture

EXPERIMENT = {
    "slug": "kill-one",
    "title": "Kill one",
    "claim": "A claim.",
    "explain": "Because.",
    "lesson_url": "/lessons/stateful-up-close/#experiment-kill-one",
    "steps": ["2:kill:worker-1"],
    "seconds": 4,
    "show": ["sessions_lost", "kills.0.sessions_held", "no_such_figure"],
    "check": "sessions_lost > 0",
    "prediction": {"text": "None are lost", "when": "sessions_lost == 0"},
}
CONFIG = {"mode": "stateful", "workers": 2, "users": 8, "rate": 40.0, "sticky": True}


async def create(
    web: RedisChannelLayer,  # noqa: F811
    host: str,
    experiment: Any,
) -> tuple[str, dict[str, Any]]:
    lab_id = uuid.uuid4().hex[:10]
    reply = await ask(
        web,
        host,
        "lab.create",
        lab_id=lab_id,
        owner="owner",
        config=CONFIG,
        experiment=experiment,
    )
    return lab_id, reply


async def test_the_host_runs_the_steps_and_judges_the_prediction(
    labhost: RunningHost,
    web: RedisChannelLayer,  # noqa: F811
) -> None:
    lab_id, reply = await create(web, labhost.name, EXPERIMENT)
    assert reply["type"] == "lab.created"

    def experiment() -> dict[str, Any]:
        hosted = labhost.host.labs[lab_id]
        return labhost.host._snapshot(hosted)["experiment"]  # type: ignore[index]

    await eventually(lambda: experiment()["state"] == "running", 20)
    await eventually(lambda: experiment()["steps"][0]["done"], 20)
    await eventually(lambda: experiment()["state"] == "done", 20)
    done = experiment()
    outcome = {o["figure"]: o["value"] for o in done["outcome"]}
    assert outcome["sessions_lost"] > 0 and outcome["kills.0.sessions_held"] > 0
    assert outcome["no_such_figure"] is None
    assert done["check_held"] is True
    assert done["held"] is False  # the learner predicted none would be lost
    assert done["predicted"] == "None are lost"
    assert done["measured"] is None  # a choice: no number guessed


async def test_a_number_prediction_carries_the_figure_it_measured(
    labhost: RunningHost,
    web: RedisChannelLayer,  # noqa: F811
) -> None:
    guess = {"text": "3", "value": 3, "figure": "sessions_lost", "tolerance": 100}
    lab_id, reply = await create(web, labhost.name, {**EXPERIMENT, "prediction": guess})
    assert reply["type"] == "lab.created"

    def experiment() -> dict[str, Any]:
        return labhost.host._snapshot(labhost.host.labs[lab_id])["experiment"]  # type: ignore[index]

    await eventually(lambda: experiment()["state"] == "done", 20)
    done = experiment()
    outcome = {o["figure"]: o["value"] for o in done["outcome"]}
    assert done["measured"] == outcome["sessions_lost"] > 0
    assert done["held"] is True  # within 100 of 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": ["2:explode"]}, "unknown action"),
        ({"steps": ["9:kill:worker-1"]}, "before the end"),
        ({"steps": ["1:kill:worker-3"]}, "worker-1 to worker-2"),
        ({"steps": ["1:kill-store"]}, "no store"),
        ({"check": "sessions lost"}, "FIGURE OP VALUE"),
        ({"lesson_url": "https://elsewhere.example/"}, "path on this site"),
        ({"prediction": {"text": "x", "value": "a lot"}}, "number prediction"),
        ({"show": ["not a figure!"]}, "list of figures"),
    ],
)
async def test_a_bad_experiment_is_refused_and_starts_nothing(
    labhost: RunningHost,
    web: RedisChannelLayer,  # noqa: F811
    change: dict[str, Any],
    message: str,
) -> None:
    lab_id, reply = await create(web, labhost.name, {**EXPERIMENT, **change})
    assert reply["type"] == "lab.error" and reply["code"] == 400
    assert message in reply["message"]
    assert lab_id not in labhost.host.labs


async def test_a_learners_step_waits_for_their_button_and_the_clock_waits_with_it(
    labhost: RunningHost,
    web: RedisChannelLayer,  # noqa: F811
) -> None:
    lab_id, reply = await create(web, labhost.name, {**EXPERIMENT, "learner": [0]})
    assert reply["type"] == "lab.created"
    hosted = labhost.host.labs[lab_id]

    def experiment() -> dict[str, Any]:
        return labhost.host._snapshot(hosted)["experiment"]  # type: ignore[index]

    early = await ask(web, labhost.name, "lab.command", lab_id=lab_id, owner="owner", action="step")
    assert early == {
        "type": "lab.error",
        "lab_id": lab_id,
        "message": "No step is waiting for you now.",
    }
    await eventually(lambda: experiment()["waiting"], 20)
    step = experiment()["steps"][0]
    assert step["learner"] and step["waiting"] and not step["done"]
    # Past its end time, the run still waits for the learner (the clock waits too).
    seconds = 4  # EXPERIMENT["seconds"]
    await eventually(lambda: hosted.lab.now() > seconds + 1, 20)
    assert experiment()["state"] == "running" and experiment()["waiting"]
    strangers = await ask(web, labhost.name, "lab.command", lab_id=lab_id, owner="x", action="step")
    assert strangers["type"] == "lab.refused"
    assert experiment()["waiting"]
    await web.send(
        labhost.name,
        {"type": "lab.command", "lab_id": lab_id, "owner": "owner", "action": "step"},
    )
    await eventually(lambda: experiment()["steps"][0]["done"], 10)
    pressed_at = hosted.lab.now()
    await eventually(lambda: experiment()["state"] == "done", 20)
    # Measured for the run's time after the step (4 - 2 s), not cut short by the wait.
    assert hosted.lab.now() - pressed_at >= seconds - 2 - 0.5
    outcome = {o["figure"]: o["value"] for o in experiment()["outcome"]}
    assert outcome["sessions_lost"] > 0


async def test_a_learner_step_out_of_range_is_refused(
    labhost: RunningHost,
    web: RedisChannelLayer,  # noqa: F811
) -> None:
    for learner in ([1], ["0"], [True], "0"):
        _, reply = await create(web, labhost.name, {**EXPERIMENT, "learner": learner})
        assert reply["type"] == "lab.error" and "learner" in reply["message"]
