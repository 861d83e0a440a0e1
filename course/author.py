"""The instructors' preview: a lesson's Markdown rendered as learners will see it, plus the
problems `manage.py check_content` would report for it, without saving anything.

Never writes into CONTENT_DIR: the checks run on a temporary copy of the content folder
(links to the real lessons) in which the previewed text stands for its file.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from course.checks import content_check
from course.lessons import (
    SLUG_RE,
    ContentError,
    LessonSource,
    lesson_paths,
    lesson_render,
    lesson_source_parse,
)
from course.markdown import QuizBlock
from course.markdown_process import RenderTooSlow, markdown_render_bounded

MAX_PREVIEW_BYTES = 200 * 1024
NEW_LESSON_SLUG = "new-lesson"
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*\n", re.S)


@dataclass(frozen=True)
class PreviewLesson:
    """Just enough of a lesson for course.quiz.render_slots."""

    slug: str
    path: Path
    quiz_blocks: tuple[QuizBlock, ...]


@dataclass(frozen=True)
class Preview:
    slug: str
    file: str  # as the author knows it: content/<slug>.md
    title: str = ""
    html: str = ""  # sanitized by course.markdown; quiz slots still to fill
    lesson: PreviewLesson | None = None
    problems: list[str] = field(default_factory=list)  # "line: message"
    error: str = ""  # when there is nothing to preview at all


def preview_slug(slug: str) -> str:
    return slug if SLUG_RE.match(slug or "") else NEW_LESSON_SLUG


def preview_build(*, text: str, slug: str) -> Preview:
    slug = preview_slug(slug)
    text = text.replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
    file = f"{Path(settings.CONTENT_DIR).name}/{slug}.md"
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_PREVIEW_BYTES:
        return Preview(
            slug=slug,
            file=file,
            error=f"The text is {size // 1024} KB; the preview takes at most "
            f"{MAX_PREVIEW_BYTES // 1024} KB. Split the lesson into smaller ones.",
        )
    if not text.strip():
        return Preview(slug=slug, file=file, error="Paste a lesson's Markdown, or pick a lesson.")

    path = Path(settings.CONTENT_DIR) / f"{slug}.md"
    data = text.encode("utf-8")
    title = ""
    source: LessonSource | None
    try:
        source = lesson_source_parse(path=path, data=data)
        body, body_line, title = source.body, source.body_line, source.summary.title
    except ContentError:
        # Still show the body: the front matter problem is listed with the others.
        source = None
        match = _FRONT_MATTER_RE.match(text)
        body = text[match.end() :] if match else text
        body_line = text.count("\n", 0, match.end()) + 1 if match else 1
    try:
        # Through the lesson cache when the file parses: check_content's render below is
        # then the same one, not a second.
        if source is not None:
            rendered = lesson_render(source=source)
        else:
            rendered = markdown_render_bounded(
                text=body, first_line=body_line, seconds=settings.LESSON_RENDER_SECONDS
            )
    except (ContentError, RenderTooSlow) as exc:
        return Preview(slug=slug, file=file, title=title, error=f"Line {exc.line}: {exc.message}")
    return Preview(
        slug=slug,
        file=file,
        title=title,
        html=rendered.html,
        lesson=PreviewLesson(slug=slug, path=path, quiz_blocks=rendered.quiz_blocks),
        problems=preview_problems(data=data, slug=slug),
    )


def preview_problems(*, data: bytes, slug: str) -> list[str]:
    """check_content's messages for this text, as if it were CONTENT_DIR/<slug>.md."""
    with tempfile.TemporaryDirectory(prefix="course-preview-") as tmp:
        folder = Path(tmp)
        for real in lesson_paths():
            if real.stem != slug:
                (folder / real.name).symlink_to(real.resolve())
        target = folder / f"{slug}.md"
        target.write_bytes(data)
        problems = content_check(content_dir=folder)
        return [f"{p.line}: {p.message}" for p in problems if p.path.name == target.name]
