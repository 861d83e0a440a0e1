"""Experiments in lessons (course.experiment): the format, its errors with file lines, and
every experiment in content/ run headless on real processes, its check held."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.conf import settings

from course.experiment import (
    ExperimentError,
    condition_parse,
    experiment_parse,
    figures_of,
)
from course.snapshot import course_snapshot_build
from playground.lab import LabConfig
from playground.lab.figures import figure_value
from playground.lab.scenario import scenario_run
from playground.labhost.host import CREATE_FIELDS

GOOD = """\
slug: kill-one
title: Kill one
claim: A claim.
lab:
  mode: stateful
  workers: 2
seconds: 5
steps:
  - at: 2
    do: kill:worker-1
predict:
  question: What?
  choices:
    - text: Lost
      when: sessions_lost > 0
    - text: Kept
      when: sessions_lost == 0
check: sessions_lost > 0
show: [sessions_lost]
explain: Because.
"""


def test_a_good_block_parses() -> None:
    experiment = experiment_parse(source=GOOD, line=10)
    assert experiment.slug == "kill-one"
    assert [str(s) for s in experiment.steps] == ["2:kill:worker-1"]
    assert experiment.configs() == {"": {"mode": "stateful", "workers": 2}}
    assert ("sticky", "on") in experiment.form_fields
    figures = {"sessions_lost": 3}
    assert experiment.check.holds(figures)
    assert experiment.predict.verdict(answer=1, figures=figures)
    assert not experiment.predict.verdict(answer=2, figures=figures)


@pytest.mark.parametrize(
    ("change", "message", "line"),
    [
        (("do: kill:worker-1", "do: explode"), "unknown action 'explode'", 18),
        (("  workers: 2", "  workers: 9"), "workers must be", 14),
        (("  workers: 2", "  colour: red"), "unexpected keyword argument 'colour'", 14),
        (("do: kill:worker-1", "do: kill:worker-3"), "worker-1 to worker-2", 14),
        (("seconds: 5", "seconds: 1"), "not before the end", 14),
        (("check: sessions_lost > 0\n", ""), "missing 'check'", 10),
        (("check: sessions_lost > 0", "check: sessions lost"), "is not FIGURE OP VALUE", 28),
        (("mode: stateful", "mode: stateful\n  handoff: maybe"), "handoff must be", 14),
    ],
)
def test_problems_name_their_file_line(change: tuple[str, str], message: str, line: int) -> None:
    with pytest.raises(ExperimentError) as info:
        experiment_parse(source=GOOD.replace(*change), line=10)
    assert any(message in p.message and p.line == line for p in info.value.problems), (
        info.value.problems
    )


def test_a_store_action_in_a_lab_without_a_store_is_refused() -> None:
    source = GOOD.replace("do: kill:worker-1", "do: kill-store")
    with pytest.raises(ExperimentError, match="no store"):
        experiment_parse(source=source, line=1)


def test_conditions_compare_figures_and_multiples() -> None:
    condition = condition_parse("three.requests_ok >= 2 * one.requests_ok and kills.0.at < 5")
    figures = {"one": {"requests_ok": 100}, "three": {"requests_ok": 250}, "kills": [{"at": 2}]}
    assert condition.holds(figures)
    assert not condition.holds({**figures, "three": {"requests_ok": 150}})
    with pytest.raises(KeyError):
        condition.holds({"one": {}})


def _every_experiment() -> list[Any]:
    snapshot = course_snapshot_build(content_dir=settings.CONTENT_DIR)
    return [
        pytest.param(slot.experiment, id=slot.experiment.slug)
        for lesson in snapshot.lessons
        for slot in lesson.rendered.experiments
        if slot.experiment is not None
    ]


def test_the_course_has_an_experiment_for_each_claim() -> None:
    snapshot = course_snapshot_build(content_dir=settings.CONTENT_DIR)
    lessons = {lesson.slug for lesson in snapshot.lessons if lesson.rendered.experiments}
    experiments = _every_experiment()
    assert len(experiments) >= 10 and len(lessons) >= 7, (len(experiments), lessons)


@pytest.mark.parametrize("experiment", _every_experiment())
async def test_every_experiment_in_the_lessons_holds_on_a_real_run(experiment: Any) -> None:
    configs = experiment.configs()
    runs = [
        scenario_run(
            LabConfig(lab_id=f"exp-{name or 'one'}", **config),
            experiment.seconds,
            list(experiment.steps),
        )
        for name, config in configs.items()
    ]
    # Variants side by side, as the experiment compares them: the same machine load on each.
    reports = dict(zip(configs, await asyncio.gather(*runs), strict=True))
    figures = figures_of(reports)
    for figure in experiment.show:
        figure_value(figure, figures)  # every figure the card shows is one the run has
    for choice in experiment.predict.choices:
        choice.when.holds(figures)  # every choice can be judged (KeyError otherwise)
    measured = {figure: figure_value(figure, figures) for figure in experiment.check.figures}
    assert experiment.check.holds(figures), (experiment.check.text, measured)
    assert all(report["orphans_after"] == 0 for report in reports.values())


def test_staff_see_why_an_experiment_is_broken_and_students_see_nothing() -> None:
    from django.template.loader import render_to_string

    from course.experiment import ExperimentSlot, experiment_slots

    [slot] = experiment_slots(blocks=[(GOOD.replace("do: kill:worker-1", "do: explode"), 10)])
    assert isinstance(slot, ExperimentSlot) and slot.experiment is None
    context = {"slot": slot, "lesson_file": "content/x.md"}
    staff = render_to_string("course/experiment.html", {**context, "staff": True})
    assert "This experiment is broken" in staff and "content/x.md:18" in staff
    assert "unknown action" in staff
    assert render_to_string("course/experiment.html", {**context, "staff": False}).strip() == ""


def test_a_side_by_side_run_measures_each_variants_figures_and_is_judged_together() -> None:
    snapshot = course_snapshot_build(content_dir=settings.CONTENT_DIR)
    found = snapshot.experiment_get(slug="deploy-both")
    assert found is not None
    exp = found[1]
    assert exp.variant_figures("stateful") == ["sessions_lost", "deploy_seconds"]
    assert exp.variant_figures("stateless") == ["sessions_lost", "requests_failed"]
    message = exp.run_message(answer="2", lesson_url="/lessons/x/", variant="stateless")
    assert message["variant"] == "stateless" and message["prediction"] is None
    assert message["show"] == ["sessions_lost", "requests_failed"]
    measured = {
        "stateful": {"sessions_lost": 12.0, "deploy_seconds": 3.5},
        "stateless": {"sessions_lost": 0.0, "requests_failed": 0.0},
    }
    verdict = exp.verdict(measured=measured, answer="2")
    assert verdict.check_held is True and verdict.held is True
    assert verdict.predicted == "Stateful loses them, stateless none"
    assert verdict.outcome[0] == ("stateful.sessions_lost", 12.0)
    assert exp.verdict(measured=measured, answer="1").held is False
    assert exp.verdict(measured=measured, answer=None).held is None
    # A lab that never measured (it ended early): nothing to judge, no verdict invented.
    partial = exp.verdict(measured={"stateful": measured["stateful"], "stateless": {}}, answer="2")
    assert partial.check_held is None and ("stateless.sessions_lost", None) in partial.outcome


def test_side_by_side_means_two_variants() -> None:
    three = """slug: three
title: T
claim: C
lab: {workers: 1}
compare: {a: {mode: stateful}, b: {mode: stateless}, c: {mode: stateless}}
seconds: 2
steps: []
predict: {question: Q, figure: requests_ok, tolerance: 1}
check: a.requests_ok > 0
explain: E
"""
    with pytest.raises(ExperimentError, match="exactly two variants"):
        experiment_parse(source=three, line=1)


@pytest.mark.parametrize("experiment", _every_experiment())
def test_every_preset_setting_reaches_the_lab_host(experiment: Any) -> None:
    """The page starts an experiment's labs through lab.create, which takes only the
    host's CREATE_FIELDS: a preset setting outside them would be dropped on the page while
    the headless run used it."""
    for config in experiment.configs().values():
        assert set(config) <= CREATE_FIELDS, set(config) - CREATE_FIELDS


def test_a_step_can_be_the_learners_to_do() -> None:
    source = GOOD.replace("    do: kill:worker-1\n", "    do: kill:worker-1\n    learner: true\n")
    assert "learner: true" in source
    experiment = experiment_parse(source=source, line=1)
    assert experiment.learner_steps == (0,)
    assert experiment.run_message(answer=None, lesson_url="/lessons/x/")["learner"] == [0]
    bad = GOOD.replace(
        "    do: kill:worker-1\n", "    do: kill:worker-1\n    learner: yes please\n"
    )
    with pytest.raises(ExperimentError, match="learner: true"):
        experiment_parse(source=bad, line=1)
