"""course.checks and `manage.py check_content`: each kind of problem, at the right file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from course.checks import content_check
from tests.course.conftest import LessonWriter, lesson_text

# lesson_text puts the front matter on lines 1-6 and a blank line 7: the body starts on line 8.
GOOD_BODY = """\
## Sticky sessions

See [the other lesson](/lessons/other/#in-memory), [above](#sticky-sessions), the
[course](/), the [stylesheet](/static/css/site.css) and [Redis](https://redis.io/).

```python
cart = {}
```

```mermaid
graph TD
  accTitle: A leads to B
  A --> B
```

<kbd>Ctrl</kbd> and <abbr title="Hypertext">HTML</abbr> are kept.
"""


@pytest.fixture
def good_course(write_lesson: LessonWriter) -> LessonWriter:
    write_lesson("lesson", order=1, body=GOOD_BODY)
    write_lesson("other", order=2, body="## In memory\n\nText.\n")
    return write_lesson


def messages(content_dir: Path) -> list[str]:
    return [str(problem) for problem in content_check(content_dir=content_dir)]


def test_a_good_course_has_no_problems(good_course: LessonWriter, content_dir: Path) -> None:
    assert messages(content_dir) == []


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("---\ntitle: T\nsummary: S\norder: 3\n---\n", 1, "missing 'minutes'"),
        (
            "---\ntitle: T\nsummary: S\norder: 3\nminutes: 2\nlevel: easy\n---\n",
            6,
            "unknown front matter field 'level'",
        ),
        (
            "---\ntitle: T\nsummary: S\norder: 3\nminutes: five\n---\n",
            5,
            "'minutes' must be an integer, not a string",
        ),
    ],
)
def test_front_matter_problems(
    good_course: LessonWriter, content_dir: Path, text: str, line: int, words: str
) -> None:
    path = good_course("bad", text=text)
    (message,) = messages(content_dir)
    assert message.startswith(f"{path}:{line}: ")
    assert words in message


def test_duplicate_order_names_both_files(good_course: LessonWriter, content_dir: Path) -> None:
    path = good_course("zzz-again", order=2)
    (message,) = messages(content_dir)
    assert message == f"{path}:4: order 2 is also used by {content_dir / 'other.md'}"


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        (
            "## A\n\nSee [it](/lessons/missing/).\n",
            10,
            "link to '/lessons/missing/': there is no lesson 'missing'",
        ),
        ("## A\n\n[x](/lessons/other/#nowhere)\n", 10, "lesson 'other' has no heading #nowhere"),
        (
            "## A\n\nJump [down](#nowhere).\n",
            10,
            "link to #nowhere: no such heading in this lesson",
        ),
        ("## A\n\n[x](/no-such-page/)\n", 10, "no page at /no-such-page/"),
        ("## A\n\n[x](/static/css/missing.css)\n", 10, "no such static file"),
        ("## A\n\n[x](other/)\n", 10, "relative link 'other/'"),
    ],
)
def test_bad_internal_links(
    good_course: LessonWriter, content_dir: Path, body: str, line: int, words: str
) -> None:
    path = good_course("bad", order=3, body=body)
    (message,) = messages(content_dir)
    assert message.startswith(f"{path}:{line}: ")
    assert words in message


def test_a_bad_link_is_reported_on_every_line_it_is_on(
    good_course: LessonWriter, content_dir: Path
) -> None:
    path = good_course("bad", order=3, body="## A\n\n[x](/lessons/gone/)\n\n[y](/lessons/gone/)\n")
    assert messages(content_dir) == [
        f"{path}:10: link to '/lessons/gone/': there is no lesson 'gone'",
        f"{path}:12: link to '/lessons/gone/': there is no lesson 'gone'",
    ]


def test_unknown_code_language_and_unclosed_fence(
    good_course: LessonWriter, content_dir: Path
) -> None:
    path = good_course("bad", order=3, body="## A\n\n```pyhton\nx = 1\n```\n\n```text\nopen\n")
    assert messages(content_dir) == [
        f"{path}:10: unknown code language 'pyhton'",
        f"{path}:14: code fence is never closed",
    ]


def test_a_diagram_needs_a_name(good_course: LessonWriter, content_dir: Path) -> None:
    path = good_course(
        "bad",
        order=3,
        body="## A\n\n```mermaid\nflowchart LR\n  A --> B\n```\n\n"
        "```mermaid\nmindmap\n  %% accTitle: Named\n  root((R))\n```\n\n"
        "```mermaid\nflowchart LR\n  accTitle: Named too\n  A --> B\n```\n",
    )
    (message,) = messages(content_dir)
    assert message.startswith(f"{path}:10: diagram has no name: add a line 'accTitle:")


@pytest.mark.parametrize(
    ("html", "words"),
    [
        ('<script src="/x.js"></script>', "raw HTML <script> is removed by the sanitizer"),
        ("<iframe src='/'></iframe>", "raw HTML <iframe> is removed"),
        ('<span onclick="go()">x</span>', "raw HTML <span>: the sanitizer removes onclick"),
        ('<a href="/" hx-get="/x" style="color:red">x</a>', "removes hx-get, style"),
        ('<a href="javascript:go()">x</a>', "raw HTML <a>: the sanitizer removes href"),
        ('<div data-quiz="x">y</div>', "removes data-quiz"),
    ],
)
def test_raw_html_the_sanitizer_would_drop(
    good_course: LessonWriter, content_dir: Path, html: str, words: str
) -> None:
    path = good_course("bad", order=3, body=f"## A\n\nText `<script>` in code is fine.\n\n{html}\n")
    (message,) = messages(content_dir)
    assert message.startswith(f"{path}:12: ")
    assert words in message


def test_quiz_blocks_go_through_the_quiz_validator(
    good_course: LessonWriter, content_dir: Path
) -> None:
    path = good_course("bad", order=3, body="## A\n\n```quiz\nid: no-question\n```\n")
    problems = content_check(content_dir=content_dir)
    assert problems, "the quiz parser found nothing wrong"
    assert {p.path for p in problems} == {path}
    assert all(10 <= p.line <= 12 for p in problems)


def test_repeated_quiz_ids_in_a_lesson(good_course: LessonWriter, content_dir: Path) -> None:
    quiz = "```quiz\nid: same\nquestion: Q?\nchoices:\n  - text: A\n    correct: true\n    feedback: F\n  - text: B\n    correct: false\n    feedback: G\n```\n"  # noqa: E501
    path = good_course("bad", order=3, body=f"## A\n\n{quiz}\n{quiz}")
    assert f"{path}:22: quiz id 'same' is also used on line 10" in messages(content_dir)


def test_command_prints_problems_and_fails(
    good_course: LessonWriter, content_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_course("bad", order=3, body="## A\n\n[x](/lessons/gone/)\n")
    with pytest.raises(CommandError, match="1 problem"):
        call_command("check_content")
    assert f"{path}:10: link to '/lessons/gone/'" in capsys.readouterr().out


def test_command_passes_on_a_good_course(
    good_course: LessonWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("check_content")
    assert "no problems" in capsys.readouterr().out


def test_the_real_course_content_is_clean() -> None:
    problems = content_check(content_dir=Path(settings.BASE_DIR) / "content")
    assert [str(p) for p in problems] == []


def test_lesson_text_helper_puts_the_body_on_line_8() -> None:
    assert lesson_text(body="BODY").split("\n").index("BODY") + 1 == 8


def test_a_lesson_too_slow_to_render_is_reported_and_the_others_still_checked(
    good_course: LessonWriter, content_dir: Path, settings: Any
) -> None:
    settings.LESSON_RENDER_SECONDS = (
        3  # stops the 40 KB run; a plain lesson renders in time, even on a loaded machine
    )
    # Body line 8 is a heading, line 10 the paragraph python-markdown needs minutes for.
    path = good_course("slow", order=3, body="## Slow\n\n" + "[" * 40_000 + "\n")
    good_course("linker", order=4, body="## L\n\n[gone](/lessons/gone/)\n")
    found = messages(content_dir)
    assert [m for m in found if m.startswith(f"{path}:")] == [
        f"{path}:10: rendering took over 3 s and was stopped. python-markdown is slow on long "
        "paragraphs full of '[' or links; the longest paragraph starts here (40,001 "
        "characters): split it or remove the run."
    ]
    assert any("link to '/lessons/gone/'" in m for m in found)


QUIZ_WITH_LINKS = """\
## A

```quiz
id: linked
question: "Which?"
choices:
  - text: "One"
    correct: true
    feedback: "See [the card]({first}) and [the other]({second})."
  - text: "Two"
    correct: false
    feedback: "No."
```
"""


def test_links_in_a_quizs_feedback_are_checked_at_the_quizs_line(
    good_course: LessonWriter, content_dir: Path
) -> None:
    body = QUIZ_WITH_LINKS.format(first="#experiment-nowhere", second="/lessons/gone/")
    path = good_course("bad", order=3, body=body)
    assert messages(content_dir) == [
        f"{path}:10: quiz: link to #experiment-nowhere: no such heading in this lesson",
        f"{path}:10: quiz: link to '/lessons/gone/': there is no lesson 'gone'",
    ]
    fine = QUIZ_WITH_LINKS.format(first="#a", second="/lessons/other/#in-memory")
    good_course("bad", order=3, body=fine)
    assert messages(content_dir) == []


def test_a_quiz_about_a_playground_lab_must_link_its_experiment(
    good_course: LessonWriter, content_dir: Path
) -> None:
    about_a_lab = QUIZ_WITH_LINKS.replace("Which?", "In a stateless playground lab, which?")
    path = good_course("bad", order=3, body=about_a_lab.format(first="#a", second="/playground/"))
    assert messages(content_dir) == [
        f"{path}:10: quiz: it asks what a playground lab shows, so a feedback must link the "
        "experiment that shows it (#experiment-<slug>, in this lesson or another)"
    ]
    linked = about_a_lab.format(first="#a", second="/lessons/other/#experiment-elsewhere")
    good_course("bad", order=3, body=linked)
    # The rule holds; only the link itself is still checked (and names no card there).
    assert messages(content_dir) == [
        f"{path}:10: quiz: link to '/lessons/other/#experiment-elsewhere': "
        "lesson 'other' has no heading #experiment-elsewhere"
    ]
