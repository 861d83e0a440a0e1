"""The instructors' preview: a lesson's Markdown rendered as learners will see it, plus the
problems `manage.py check_content` would report for it, without saving anything.

Never writes into CONTENT_DIR: the preview is a course snapshot of a temporary copy of the
content folder (links to the real lessons) in which the previewed text stands for its
file. The site's own snapshot lends it the renders of the unchanged lessons.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from course.checks import content_problems
from course.lessons import SLUG_RE, ContentError
from course.markdown import RenderedMarkdown
from course.markdown_process import RenderTooSlow, markdown_render_bounded
from course.snapshot import course_snapshot, course_snapshot_build

MAX_PREVIEW_BYTES = 200 * 1024
NEW_LESSON_SLUG = "new-lesson"
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*\n", re.S)


@dataclass(frozen=True)
class Preview:
    slug: str
    file: str  # as the author knows it: content/<slug>.md
    title: str = ""
    rendered: RenderedMarkdown | None = None
    problems: list[str] = field(default_factory=list)  # "line: message"
    error: str = ""  # when there is nothing to preview at all

    @property
    def html(self) -> str:
        return self.rendered.html if self.rendered is not None else ""


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

    site = course_snapshot()
    with tempfile.TemporaryDirectory(prefix="course-preview-") as tmp:
        folder = Path(tmp)
        for name in site.contents:
            if name != f"{slug}.md":
                (folder / name).symlink_to(Path(site.directory, name).resolve())
        (folder / f"{slug}.md").write_text(text, encoding="utf-8")
        snapshot = course_snapshot_build(content_dir=folder, previous=site)
    problems = [f"{p.line}: {p.message}" for p in content_problems(snapshot) if p.path.stem == slug]
    source = snapshot.sources.get(slug)
    if source is not None:
        try:
            lesson = snapshot.lesson_get(slug=slug)
        except ContentError as exc:  # the render was stopped at the time limit
            return Preview(slug=slug, file=file, title=source.summary.title, error=_error(exc))
        return Preview(
            slug=slug, file=file, title=lesson.title, rendered=lesson.rendered, problems=problems
        )
    # The front matter is broken (and listed with the problems): still show the body.
    match = _FRONT_MATTER_RE.match(text)
    body = text[match.end() :] if match else text
    body_line = text.count("\n", 0, match.end()) + 1 if match else 1
    try:
        rendered = markdown_render_bounded(
            text=body, first_line=body_line, seconds=settings.LESSON_RENDER_SECONDS
        )
    except RenderTooSlow as exc:
        return Preview(slug=slug, file=file, error=_error(exc))
    return Preview(slug=slug, file=file, rendered=rendered, problems=problems)


def _error(exc: ContentError | RenderTooSlow) -> str:
    return f"Line {exc.line}: {exc.message}"
