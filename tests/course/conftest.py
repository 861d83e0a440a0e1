"""Fixtures for the course tests: a temporary CONTENT_DIR and lesson files written into it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

LessonWriter = Callable[..., Path]


def lesson_text(
    *,
    title: str = "A lesson",
    summary: str = "What it is about.",
    order: int = 1,
    minutes: int = 5,
    body: str = "## Start\n\nSome text.\n",
) -> str:
    return (
        f"---\ntitle: {title}\nsummary: {summary}\norder: {order}\nminutes: {minutes}\n---\n\n"
        f"{body}"
    )


@pytest.fixture
def content_dir(tmp_path: Path, settings: Any) -> Path:  # pytest-django's settings
    """An empty CONTENT_DIR for this test."""
    directory = tmp_path / "content"
    directory.mkdir()
    settings.CONTENT_DIR = directory
    return directory


@pytest.fixture
def write_lesson(content_dir: Path) -> LessonWriter:
    """write_lesson(slug, text=None, **front_matter_and_body) -> the file's path."""

    def write(slug: str, text: str | None = None, **fields: object) -> Path:
        path = content_dir / f"{slug}.md"
        path.write_text(text if text is not None else lesson_text(**fields), encoding="utf-8")  # type: ignore[arg-type]
        return path

    return write
