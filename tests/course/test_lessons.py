"""course.snapshot over course.lessons: loading, front matter checks with file:line, safe
slugs, renders reused while a file's bytes are unchanged."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from course import snapshot
from course.lessons import ContentError, LessonNotFound, lesson_source_parse
from course.snapshot import course_snapshot
from tests.course.conftest import LessonWriter, lesson_text

REAL_LESSONS = [p.stem for p in sorted((Path(settings.BASE_DIR) / "content").glob("*.md"))]


@pytest.mark.parametrize("slug", REAL_LESSONS)
def test_every_real_lesson_renders_with_its_title(slug: str) -> None:
    lesson = course_snapshot().lesson_get(slug=slug)
    assert lesson.title
    assert lesson.html.strip()
    assert lesson.toc, "every lesson has sections"


def test_the_course_has_lessons() -> None:
    assert len(REAL_LESSONS) >= 6


def test_list_is_in_course_order_and_leaves_out_broken_files(write_lesson: LessonWriter) -> None:
    write_lesson("second", title="Second", order=2)
    write_lesson("first", title="First", order=1)
    broken = write_lesson("broken", text="---\ntitle: Broken\n---\n")
    (broken.parent / "notes.txt").write_text("not a lesson")

    assert [lesson.slug for lesson in course_snapshot().lessons] == ["first", "second"]
    (error,) = course_snapshot().errors
    assert (error.path, error.line) == (broken, 1)


def test_summary_fields_come_from_the_front_matter(write_lesson: LessonWriter) -> None:
    write_lesson("sticky", title="Sticky sessions", summary="Pinned.", order=3, minutes=7)
    (lesson,) = course_snapshot().lessons
    assert (lesson.slug, lesson.title, lesson.summary, lesson.order, lesson.minutes) == (
        "sticky",
        "Sticky sessions",
        "Pinned.",
        3,
        7,
    )


FRONT = "---\ntitle: T\nsummary: S\norder: 1\nminutes: 5\n---\n"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("---\ntitle: T\nsummary: S\norder: 1\n---\n", 1, "missing 'minutes'"),
        ("---\ntitle: T\nsummary: S\norder: 1\nminutes: 5\nauthor: me\n---\n", 6, "unknown"),
        (
            "---\ntitle: T\nsummary: S\norder: first\nminutes: 5\n---\n",
            4,
            "'order' must be an integer",
        ),
        ("---\ntitle: T\nsummary: S\norder: 1\nminutes: true\n---\n", 5, "not true/false"),
        ("---\ntitle: 12\nsummary: S\norder: 1\nminutes: 5\n---\n", 2, "'title' must be a string"),
        ("---\ntitle: T\nsummary: S\norder: 1.5\nminutes: 5\n---\n", 4, "must be an integer"),
        ("---\ntitle: T\nsummary: [S\norder: 1\nminutes: 5\n---\n", 4, "not valid YAML"),
        ("---\ntitle: T\ntitle: U\nsummary: S\norder: 1\nminutes: 5\n---\n", 3, "given twice"),
        ("---\ntitle: ''\nsummary: S\norder: 1\nminutes: 5\n---\n", 2, "'title' is empty"),
        ("---\ntitle: T\nsummary: S\norder: 1\nminutes: 0\n---\n", 5, "at least 1"),
        ("# No front matter\n", 1, "no front matter"),
        ("---\ntitle: T\n", 1, "no closing ---"),
    ],
)
def test_front_matter_problems_name_file_and_line(text: str, line: int, words: str) -> None:
    path = Path("content/x.md")
    with pytest.raises(ContentError) as caught:
        lesson_source_parse(path=path, data=text.encode())
    assert (caught.value.path, caught.value.line) == (path, line)
    assert words in caught.value.message
    assert str(caught.value).startswith(f"content/x.md:{line}: ")


def test_file_name_must_be_a_slug() -> None:
    with pytest.raises(ContentError, match="not a lesson slug"):
        lesson_source_parse(path=Path("content/Bad_Name.md"), data=FRONT.encode())


def test_body_lines_are_file_lines(write_lesson: LessonWriter) -> None:
    # Front matter is lines 1-6, a blank line 7, the quiz fence opens on line 10.
    write_lesson("q", body="## Quiz\n\n```quiz\nid: one\n```\n")
    (slot,) = course_snapshot().lesson_get(slug="q").quizzes
    assert slot.line == 10
    assert {problem.line for problem in slot.problems} == {10}  # missing question and choices


@pytest.mark.parametrize(
    "slug",
    [
        "../secret",
        "..",
        "%2e%2e",
        "/etc/passwd",
        "sub/lesson",
        "a\\b",
        "a\x00b",
        "First",
        "first.md",
        "first\n",
        "",
        "-first",
        "first--x",
    ],
)
def test_slugs_that_are_not_slugs_are_not_found(
    slug: str, write_lesson: LessonWriter, content_dir: Path
) -> None:
    write_lesson("first")
    (content_dir.parent / "secret.md").write_text(FRONT)
    with pytest.raises(LessonNotFound):
        course_snapshot().lesson_get(slug=slug)


def test_unknown_slug_is_not_found(write_lesson: LessonWriter) -> None:
    write_lesson("first")
    with pytest.raises(LessonNotFound):
        course_snapshot().lesson_get(slug="second")


def test_broken_lesson_raises_content_error(write_lesson: LessonWriter) -> None:
    write_lesson("broken", text="---\ntitle: T\n---\n")
    with pytest.raises(ContentError):
        course_snapshot().lesson_get(slug="broken")


def test_rendering_is_cached_by_content_and_an_edit_shows_at_once(
    write_lesson: LessonWriter,
) -> None:
    path = write_lesson("live", body="## Before\n")
    first, again = (
        course_snapshot().lesson_get(slug="live"),
        course_snapshot().lesson_get(slug="live"),
    )
    assert again.rendered is first.rendered  # same bytes: no second render

    path.write_text(lesson_text(body="## After\n"))
    edited = course_snapshot().lesson_get(slug="live")
    assert "After" in edited.html and "Before" not in edited.html

    path.write_text(lesson_text(body="## Before\n"))
    assert "Before" in course_snapshot().lesson_get(slug="live").html


def test_a_same_size_edit_that_leaves_the_stat_unchanged_is_seen(
    write_lesson: LessonWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timestamps are coarse (a clock tick on ext4, 1 s on HFS+, 2 s on FAT): two writes of
    the same size in one tick leave the same stat. A file changed that recently is read and
    compared on every call, whatever its stat says."""
    path = write_lesson("live", title="Before")
    before = os.stat(path)
    assert course_snapshot().lesson_get(slug="live").title == "Before"

    path.write_text(lesson_text(title="Beforx"))  # same size, same inode
    real_stat = os.stat

    def same_tick_stat(target: object, *args: object, **kwargs: object) -> os.stat_result:
        # The filesystem's clock has not ticked since the first write.
        return before if Path(str(target)) == path else real_stat(target, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", same_tick_stat)
    assert os.stat(path) == before
    assert course_snapshot().lesson_get(slug="live").title == "Beforx"
    assert [lesson.title for lesson in course_snapshot().lessons] == ["Beforx"]


def test_an_unchanged_file_costs_a_stat_not_a_read(
    write_lesson: LessonWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("course.snapshot.RACY_NS", 0)  # trust a stat as soon as it is taken
    path = write_lesson("live", title="Before")
    reads: list[Path] = []
    real_read = Path.read_bytes

    def counted_read(self: Path) -> bytes:
        reads.append(self)
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", counted_read)
    assert course_snapshot().lesson_get(slug="live").title == "Before"
    assert [lesson.title for lesson in course_snapshot().lessons] == ["Before"]
    assert course_snapshot().lesson_get(slug="live").title == "Before"
    assert reads == [path]

    path.write_text(lesson_text(title="After the edit"))
    assert course_snapshot().lesson_get(slug="live").title == "After the edit"
    assert reads == [path, path]


def test_neighbours_follow_course_order(write_lesson: LessonWriter) -> None:
    for slug, order in (("a", 1), ("b", 2), ("c", 3)):
        write_lesson(slug, order=order)
    course = course_snapshot()
    assert [n and n.slug for n in course.neighbours(slug="a")] == [None, "b"]
    assert [n and n.slug for n in course.neighbours(slug="b")] == ["a", "c"]
    assert [n and n.slug for n in course.neighbours(slug="c")] == ["b", None]
    assert [course.number(slug=slug) for slug in "abcd"] == [1, 2, 3, None]


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """How many texts each kind of render call got: "one" for a lesson rendered on its own,
    "batch" for several rendered in one child."""
    calls: dict[str, list[int]] = {"one": [], "batch": []}
    one, batch = snapshot.markdown_render_bounded, snapshot.markdown_render_bounded_many

    def counting_one(**kwargs: Any) -> Any:
        calls["one"].append(1)
        return one(**kwargs)

    def counting_batch(**kwargs: Any) -> Any:
        calls["batch"].append(len(kwargs["items"]))
        return batch(**kwargs)

    monkeypatch.setattr(snapshot, "markdown_render_bounded", counting_one)
    monkeypatch.setattr(snapshot, "markdown_render_bounded_many", counting_batch)
    return calls


def test_all_lessons_missing_a_render_are_rendered_in_one_child(
    write_lesson: LessonWriter, renders: dict[str, list[int]]
) -> None:
    fresh = uuid.uuid4().hex  # bodies no earlier test rendered
    for order, slug in enumerate(["one", "two", "three"], start=1):
        write_lesson(slug, order=order, body=f"## {slug.title()}\n\n{fresh} {slug}\n")

    first = course_snapshot().lessons
    assert [lesson.slug for lesson in first] == ["one", "two", "three"]
    assert all(f"{fresh} {lesson.slug}" in lesson.html for lesson in first)
    assert renders == {"one": [], "batch": [3]}

    assert [lesson.html for lesson in course_snapshot().lessons] == [
        lesson.html for lesson in first
    ]
    assert renders == {"one": [], "batch": [3]}  # the same snapshot: nothing rendered again

    path = write_lesson("two", order=2, body="## Two\n\nEdited.\n")
    assert "Edited." in course_snapshot().lesson_get(slug="two").html
    assert renders == {"one": [1], "batch": [3]}  # only the edited file, on its own
    assert path.exists()


def test_a_slow_lesson_stops_the_batch_and_is_found_on_its_own(
    write_lesson: LessonWriter, renders: dict[str, list[int]], settings: Any
) -> None:
    settings.LESSON_RENDER_SECONDS = (
        3  # stops the 40 KB run; a plain lesson renders in time, even on a loaded machine
    )
    fresh = uuid.uuid4().hex
    write_lesson("good", order=1, body=f"## Good\n\n{fresh}\n")
    path = write_lesson("slow", order=2, body="## Slow\n\n" + "[" * 40_000 + "\n")
    write_lesson("fine", order=3, body=f"## Fine\n\n{fresh}\n")

    assert [lesson.slug for lesson in course_snapshot().lessons] == ["good", "fine"]
    assert renders == {"one": [1, 1, 1], "batch": [3]}
    with pytest.raises(ContentError) as caught:
        course_snapshot().lesson_get(slug="slow")
    assert (caught.value.path, caught.value.line) == (path, 10)
    assert "rendering took over 3 s" in caught.value.message
