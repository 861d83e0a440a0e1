"""Quizzes: parsing and validation with file lines, rendering without answers, checking."""

from __future__ import annotations

import re
import textwrap

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from course.markdown import RenderedMarkdown
from course.models import QuizAnswer
from course.quiz import Quiz, QuizError, QuizSlot, quiz_check, quiz_parse, quiz_slots
from course.quiz_forms import page_parts, quiz_form_build
from course.snapshot import course_snapshot

FENCE_LINE = 40  # where the ```quiz fence of the test blocks would sit in a lesson file

GOOD = textwrap.dedent(
    """\
    id: kill-sticky-worker
    question: "worker-2 dies while sticky sessions are on. What happens to its carts?"
    choices:
      - text: "They move to another worker"
        correct: false
        feedback: "Nothing copies memory out of a killed process."
      - text: "They are lost"
        correct: true
        feedback: "Right: they lived only in worker-2's memory."
    hint: "Where did the cart live?"
    """
)


def parse(source: str) -> Quiz:
    return quiz_parse(source=source, line=FENCE_LINE)


def problems(source: str) -> list[str]:
    try:
        parse(textwrap.dedent(source))
    except QuizError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_good_block_parses_and_validates() -> None:
    quiz = parse(GOOD)
    assert quiz.id == "kill-sticky-worker"
    assert [c.correct for c in quiz.choices] == [False, True]
    assert quiz.hint == "Where did the cart live?"
    assert not quiz.multiple
    assert problems(GOOD) == []


def test_inline_text_goes_through_the_callers_renderer() -> None:
    quiz = quiz_parse(source=GOOD, line=FENCE_LINE, inline=str.upper)
    assert quiz.question_html == quiz.question.upper()
    assert [c.feedback_html for c in quiz.choices] == [c.feedback.upper() for c in quiz.choices]
    assert quiz.hint_html == "WHERE DID THE CART LIVE?"


def test_a_repeated_id_makes_every_block_that_uses_it_unusable() -> None:
    other = GOOD.replace("kill-sticky-worker", "other")
    first, second, third = quiz_slots(blocks=[(GOOD, 10), (other, 20), (GOOD, 30)])
    assert first.quiz is None and third.quiz is None
    assert second.quiz is not None and second.quiz.id == "other"
    assert [str(p) for p in first.problems] == [
        "10: quiz id 'kill-sticky-worker' is used again on line 30"
    ]
    assert [str(p) for p in third.problems] == [
        "30: quiz id 'kill-sticky-worker' is also used on line 10"
    ]


@pytest.mark.parametrize(
    ("source", "line_offset", "words"),
    [
        # YAML syntax error: reported on the line where the parser gave up.
        ("id: a\nquestion: q: r\nchoices: []\n", 2, "invalid YAML: mapping values"),
        # An unclosed quote: the end is where parsing stopped, the message names the start.
        (
            'id: a\nquestion: "unclosed\nchoices: []\n',
            4,
            f"scanning a quoted scalar that starts on line {FENCE_LINE + 2}",
        ),
        ("- just\n- a list\n", 0, "key: value"),
        ("id: a\nquestion: q\ncolour: red\nchoices: []\n", 3, "unknown key 'colour'"),
        ("id: Bad_Id\nquestion: q\n", 1, "lowercase"),
        ("question: q\nchoices: []\n", 0, "missing 'id'"),
        (
            "id: a\nchoices:\n  - text: x\n    correct: true\n    feedback: f\n",
            0,
            "missing 'question'",
        ),
        ("id: a\nquestion: q\nchoices: nope\n", 3, "must be a list"),
        (
            "id: a\nquestion: q\nchoices:\n  - text: x\n    correct: true\n    feedback: f\n",
            3,
            "2 to 5 choices",
        ),
        (
            "id: a\nquestion: q\nchoices:\n  - text: x\n    correct: false\n    feedback: f\n"
            "  - text: y\n    correct: false\n    feedback: g\n",
            3,
            "no choice has 'correct: true'",
        ),
        (
            "id: a\nquestion: q\nchoices:\n  - text: x\n    correct: true\n    feedback: f\n"
            "  - text: y\n    correct: false\n",
            7,
            "choice 2: missing or empty 'feedback'",
        ),
        (
            "id: a\nquestion: q\nchoices:\n  - text: x\n    correct: maybe\n    feedback: f\n"
            "  - text: y\n    correct: false\n    feedback: g\n",
            4,
            "choice 1: 'correct' must be",
        ),
        (
            "id: a\nquestion: q\nchoices:\n  - text: x\n    correct: true\n    feedback: f\n"
            "    why: no\n  - text: y\n    correct: false\n    feedback: g\n",
            7,
            "choice 1: unknown key 'why'",
        ),
        (
            "id: a\nquestion: q\nhint: ''\nchoices:\n  - text: x\n    correct: true\n    "
            "feedback: f\n  - text: y\n    correct: false\n    feedback: g\n",
            3,
            "'hint'",
        ),
        (
            "id: a\nid: b\nquestion: q\nchoices:\n  - text: x\n    correct: true\n    "
            "feedback: f\n  - text: y\n    correct: false\n    feedback: g\n",
            2,
            "appears twice",
        ),
        ("id: a\nquestion: q\norder: random\n", 3, "'order' must be one of shuffled, fixed"),
    ],
)
def test_each_error_names_its_line(source: str, line_offset: int, words: str) -> None:
    messages = problems(source)
    expected_line = FENCE_LINE + line_offset
    assert any(m.startswith(f"{expected_line}: ") and words in m for m in messages), messages


def test_several_problems_are_all_reported_in_line_order() -> None:
    messages = problems(
        "id: a\nquestion: q\nchoices:\n  - text: x\n    correct: true\n"
        "  - text: ''\n    correct: false\n    feedback: g\n"
    )
    assert len(messages) == 2
    lines = [int(m.split(":")[0]) for m in messages]
    assert lines == [FENCE_LINE + 4, FENCE_LINE + 6]


FOUR = textwrap.dedent(
    """\
    id: {id}
    question: "How many?"
    {order}
    choices:
      - text: "5"
        correct: false
        feedback: "f1"
      - text: "10"
        correct: true
        feedback: "f2"
      - text: "up to 40"
        correct: false
        feedback: "f3"
      - text: "unlimited"
        correct: false
        feedback: "f4"
    """
)


def test_choices_are_shown_in_an_order_of_the_quizs_own_and_fixed_keeps_the_written_one() -> None:
    orders = {
        quiz_id: [c.number for c in parse(FOUR.format(id=quiz_id, order="")).shown]
        for quiz_id in ("q-a", "q-b", "q-c", "q-d", "q-e", "q-f")
    }
    # Each is the same four choices, numbered as written (what the form sends)...
    assert all(sorted(numbers) == [1, 2, 3, 4] for numbers in orders.values())
    # ...in an order that is the same on every parse (every process, every learner)...
    assert [c.number for c in parse(FOUR.format(id="q-a", order="")).shown] == orders["q-a"]
    # ...and differs between quizzes, so the written position of the answer says nothing.
    assert len({tuple(numbers) for numbers in orders.values()}) > 1
    fixed = parse(FOUR.format(id="q-a", order="order: fixed"))
    assert [c.number for c in fixed.shown] == [1, 2, 3, 4]


def test_the_page_lists_choices_in_their_shown_order() -> None:
    from django.template.loader import render_to_string

    quiz = parse(FOUR.format(id="q-c", order=""))  # shown 3, 4, 1, 2
    body = render_to_string("course/quiz.html#body", {"quiz": quiz})
    values = [int(v) for v in re.findall(r'name="choice" value="(\d)"', body)]
    assert values == [c.number for c in quiz.shown] != [1, 2, 3, 4]


def test_check_single_and_multiple() -> None:
    quiz = parse(GOOD)
    assert quiz_check(quiz=quiz, selected=[2]).correct
    assert not quiz_check(quiz=quiz, selected=[1]).correct
    assert not quiz_check(quiz=quiz, selected=[]).correct
    assert not quiz_check(quiz=quiz, selected=[99]).selected

    multi = parse(
        "id: m\nquestion: q\nchoices:\n"
        "  - {text: a, correct: true, feedback: fa}\n"
        "  - {text: b, correct: true, feedback: fb}\n"
        "  - {text: c, correct: false, feedback: fc}\n"
    )
    assert multi.multiple
    assert quiz_check(quiz=multi, selected=[1, 2]).correct
    partial = quiz_check(quiz=multi, selected=[1])
    assert not partial.correct and partial.missing_some
    assert not quiz_check(quiz=multi, selected=[1, 2, 3]).correct


# ---------------------------------------------------------------------------------------
# Against the real content and views


def a_lesson_with_quizzes():
    for lesson in course_snapshot().lessons:
        quizzes = [slot.quiz for slot in lesson.quizzes if slot.quiz is not None]
        if len(quizzes) >= 2:
            return lesson, quizzes
    raise AssertionError("the course has no lesson with two quizzes")


def lesson_url(slug: str) -> str:
    return reverse("course:lesson", kwargs={"slug": slug})


def answer_url(slug: str, quiz_id: str) -> str:
    return reverse("course:quiz_answer", kwargs={"slug": slug, "quiz_id": quiz_id})


def test_every_quiz_in_the_content_is_valid() -> None:
    for lesson in course_snapshot().lessons:
        for slot in lesson.quizzes:
            assert slot.quiz is not None, (lesson.slug, slot.line, slot.problems)


@pytest.mark.django_db
def test_rendered_quiz_has_no_correctness_in_the_page(client: Client) -> None:
    lesson, quizzes = a_lesson_with_quizzes()
    html = client.get(lesson_url(lesson.slug)).content.decode()
    assert "csrfmiddlewaretoken" in html  # the no-JavaScript form can post
    for quiz in quizzes:
        section = _quiz_section(html, quiz.id)
        assert f'hx-post="{answer_url(lesson.slug, quiz.id)}"' in section
        assert len(re.findall(r'name="choice"', section)) == len(quiz.choices)
        for choice in quiz.choices:
            assert _plain(choice.feedback) not in _plain_html(html)


def rendered_with(slot: QuizSlot) -> RenderedMarkdown:
    """A lesson body that is just this quiz."""
    return RenderedMarkdown(
        parts=("", ""), slots=(slot,), toc=(), toc_html="", heading_ids=frozenset(),
        links=(), has_diagram=False,
    )  # fmt: skip


def test_a_quiz_forms_content_partials_read_no_request(rf) -> None:
    """The snapshot renders a quiz's "open" and "body" once, with no request
    (quiz_form_build): they must give the same HTML as with a staff member's request."""
    from django.contrib.auth.models import User
    from django.template.loader import render_to_string

    quiz = parse(GOOD)
    form = quiz_form_build(slug="l", quiz=quiz)
    request = rf.get("/")
    request.user = User(username="staff", is_staff=True)
    context = {"quiz": quiz, "action": answer_url("l", quiz.id)}
    for name, built in (("open", form.open), ("body", form.body)):
        assert render_to_string(f"course/quiz.html#{name}", context, request=request) == built
    assert 'name="choice"' in form.body and "checked" not in form.body


def test_moving_the_right_answer_does_not_change_the_html(rf) -> None:
    """The strongest form of 'no answers in the page': the HTML is the same whichever
    choice is the right one."""
    from django.contrib.auth.models import AnonymousUser
    from django.template.loader import render_to_string

    def render(source: str) -> str:
        request = rf.get("/")
        request.user = AnonymousUser()
        slot = QuizSlot(line=FENCE_LINE, quiz=parse(source))
        (part, _) = page_parts(rendered=rendered_with(slot), slug="l", answers={})
        context = {"slot": slot, "form": part.form}
        html = render_to_string("course/quiz.html#slot", context, request=request)
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)

    swapped = (
        GOOD.replace("correct: false", "correct: X")
        .replace("correct: true", "correct: false")
        .replace("correct: X", "correct: true")
    )
    assert swapped != GOOD
    first, second = render(GOOD), render(swapped)
    assert 'name="choice"' in first and "They are lost" in first
    assert first == second


@pytest.mark.django_db
def test_htmx_answer_wrong_then_right_gives_each_choice_its_feedback(client: Client) -> None:
    lesson, quizzes = a_lesson_with_quizzes()
    quiz = next(q for q in quizzes if not q.multiple)
    wrong = next(c for c in quiz.choices if not c.correct)
    right = next(c for c in quiz.choices if c.correct)
    url = answer_url(lesson.slug, quiz.id)

    response = client.post(url, {"choice": str(wrong.number)}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Not quite" in body
    assert _plain(wrong.feedback) in _plain_html(body)
    assert _plain(right.feedback) not in _plain_html(body)
    assert "<html" not in body  # only the feedback partial

    response = client.post(url, {"choice": str(right.number)}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert "Correct!" in body
    assert _plain(right.feedback) in _plain_html(body)
    assert _plain(wrong.feedback) not in _plain_html(body)


@pytest.mark.django_db
def test_answer_without_a_choice_asks_for_one_and_records_nothing(client: Client) -> None:
    lesson, quizzes = a_lesson_with_quizzes()
    response = client.post(
        answer_url(lesson.slug, quizzes[0].id), {}, headers={"HX-Request": "true"}
    )
    assert "Pick an answer first" in response.content.decode()
    assert not QuizAnswer.objects.exists()


@pytest.mark.django_db
def test_no_js_post_redirects_to_the_quiz_and_shows_the_answer_on_every_visit(
    client: Client,
) -> None:
    lesson, quizzes = a_lesson_with_quizzes()
    quiz = quizzes[0]
    wrong = next(c for c in quiz.choices if not c.correct)
    response = client.post(answer_url(lesson.slug, quiz.id), {"choice": str(wrong.number)})
    assert response.status_code == 303
    assert response["Location"] == f"{lesson_url(lesson.slug)}#quiz-{quiz.id}"

    for _ in range(2):  # after the redirect, and again after a reload
        page = client.get(response["Location"].split("#")[0]).content.decode()
        section = _quiz_section(page, quiz.id)
        assert _plain(wrong.feedback) in _plain_html(section)
        assert f'value="{wrong.number}" checked' in re.sub(r"\s+", " ", section)
        assert "Not quite" in section
    # Only that quiz: the lesson's other quizzes are fresh.
    other = _quiz_section(page, quizzes[1].id)
    assert "checked" not in other and "quiz-verdict" not in other


@pytest.mark.django_db
def test_an_htmx_answer_is_shown_again_when_the_lesson_is_reopened(client: Client) -> None:
    lesson, quizzes = a_lesson_with_quizzes()
    quiz = next(q for q in quizzes if not q.multiple)
    right = next(c for c in quiz.choices if c.correct)
    client.post(
        answer_url(lesson.slug, quiz.id),
        {"choice": str(right.number)},
        headers={"HX-Request": "true"},
    )
    section = _quiz_section(client.get(lesson_url(lesson.slug)).content.decode(), quiz.id)
    assert "Correct!" in section
    assert f'value="{right.number}" checked' in re.sub(r"\s+", " ", section)


@pytest.mark.django_db
def test_unknown_quiz_or_lesson_is_404_and_get_is_405(client: Client) -> None:
    lesson, quizzes = a_lesson_with_quizzes()
    assert client.post(answer_url(lesson.slug, "no-such-quiz"), {"choice": "1"}).status_code == 404
    assert (
        client.post(answer_url("no-such-lesson", quizzes[0].id), {"choice": "1"}).status_code == 404
    )
    assert client.get(answer_url(lesson.slug, quizzes[0].id)).status_code == 405


@pytest.mark.django_db
def test_csrf_is_enforced_on_answers() -> None:
    lesson, quizzes = a_lesson_with_quizzes()
    client = Client(enforce_csrf_checks=True)
    response = client.post(answer_url(lesson.slug, quizzes[0].id), {"choice": "1"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_answers_are_recorded_anonymously_and_admin_shows_stats(
    client: Client, admin_client: Client
) -> None:
    lesson, quizzes = a_lesson_with_quizzes()
    quiz = next(q for q in quizzes if not q.multiple)
    wrong = next(c for c in quiz.choices if not c.correct)
    right = next(c for c in quiz.choices if c.correct)
    url = answer_url(lesson.slug, quiz.id)
    # Learner 1: wrong, then right. Learner 2: wrong only.
    client.post(url, {"choice": str(wrong.number)}, headers={"HX-Request": "true"})
    client.post(url, {"choice": str(right.number)}, headers={"HX-Request": "true"})
    other = Client()
    other.post(url, {"choice": str(wrong.number)}, headers={"HX-Request": "true"})

    answers = list(QuizAnswer.objects.order_by("answered_at", "id"))
    assert [a.correct for a in answers] == [False, True, False]
    assert [a.choices for a in answers] == [[wrong.number], [right.number], [wrong.number]]
    assert {a.lesson_slug for a in answers} == {lesson.slug}
    assert answers[0].session_hash == answers[1].session_hash != answers[2].session_hash
    session_key = client.session.session_key
    assert session_key and session_key not in answers[0].session_hash
    assert len(answers[0].session_hash) == 64

    page = admin_client.get(reverse("admin:course_quizquestionstats_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    row = re.search(
        rf"<tr>\s*<td><a [^>]*>{lesson.slug}</a></td>\s*<td>{quiz.id}</td>(.*?)</tr>", html, re.S
    )
    assert row, html
    cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
    # learners, got it right, share, attempts, wrong attempts
    assert cells == ["2", "1", "50%", "3", "2"]


@pytest.mark.django_db
def test_admin_stats_need_staff(client: Client) -> None:
    url = reverse("admin:course_quizquestionstats_changelist")
    assert client.get(url).status_code == 302
    get_user_model().objects.create_user("learner", password="pw-learner-1")
    client.login(username="learner", password="pw-learner-1")
    assert client.get(url).status_code == 302


def test_lesson_get_knows_the_lessons_we_use() -> None:
    lesson, _ = a_lesson_with_quizzes()
    assert course_snapshot().lesson_get(slug=lesson.slug).slug == lesson.slug


def _quiz_section(page: str, quiz_id: str) -> str:
    start = page.index(f'id="quiz-{quiz_id}"')
    return page[start : page.index("</section>", start)]


def _plain(text: str) -> str:
    """Feedback as Markdown source reduced to words, to compare with rendered HTML."""
    return " ".join(re.sub(r"\[([^\]]*)\]\([^)]*\)|[`*_]", r"\1", text).split())[:60]


def _plain_html(html: str) -> str:
    import html as html_module

    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", "", html)).split())
