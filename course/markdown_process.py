"""Markdown rendered in a child process, stopped after a time limit.

python-markdown takes time quadratic in a paragraph's length on some input: a run of `[`,
or links one after another in one paragraph (Python-Markdown issues #798 and #1619), so
40 KB of `[` in a lesson file would hold a web thread for minutes. Every lesson body is
therefore rendered by `python -m course.markdown_process`, which runs course.markdown
(no Django) and is killed at a time limit (settings.LESSON_RENDER_SECONDS on the site); the
caller gets RenderTooSlow, naming the paragraph most likely at fault. The child also limits
its own CPU time and dies with the thread that started it, so a web process that is killed
leaves no renderer behind.

Renders are rare (once per version of a lesson per process: course.snapshot keeps them
while a file's bytes are unchanged), so the child's start-up, about 0.1 s, is paid once per
lesson, not per page view; a snapshot renders all the missing lessons in one child.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from config.lifeline import die_with
from course.markdown import RenderedMarkdown, markdown_render

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class RenderTooSlow(Exception):
    """The render was stopped at the time limit. The text says where to look."""

    def __init__(self, *, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def markdown_render_bounded(*, text: str, first_line: int = 1, seconds: float) -> RenderedMarkdown:
    """course.markdown.markdown_render in a child process; RenderTooSlow after `seconds`."""
    try:
        return markdown_render_bounded_many(items=[(text, first_line)], seconds=seconds)[0]
    except RenderTooSlow:
        raise _too_slow(text=text, first_line=first_line, seconds=seconds) from None


def markdown_render_bounded_many(
    *, items: Sequence[tuple[str, int]], seconds: float
) -> list[RenderedMarkdown]:
    """Several (text, first_line) rendered in one child process, which starts once instead
    of once each; RenderTooSlow (naming no paragraph) when all of them take over `seconds`."""
    request = [{"text": text, "first_line": first_line} for text, first_line in items]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "course.markdown_process", str(os.getpid()), str(seconds)],
            input=json.dumps(request).encode(),
            capture_output=True,
            cwd=PROJECT_ROOT,
            timeout=seconds,  # on expiry the child is killed and reaped before this raises
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _batch_too_slow(seconds) from None
    if done.returncode == -signal.SIGXCPU or done.returncode == -signal.SIGKILL:
        raise _batch_too_slow(seconds)
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the Markdown renderer failed ({done.returncode}): {last[0]}")
    rendered = pickle.loads(done.stdout)  # our own child's output, our own dataclasses
    assert isinstance(rendered, list) and len(rendered) == len(items)
    assert all(isinstance(one, RenderedMarkdown) for one in rendered)
    return rendered


def _batch_too_slow(seconds: float) -> RenderTooSlow:
    return RenderTooSlow(line=1, message=f"rendering took over {seconds:.0f} s and was stopped.")


def _too_slow(*, text: str, first_line: int, seconds: float) -> RenderTooSlow:
    line, size = _longest_paragraph(text)
    return RenderTooSlow(
        line=first_line + line,
        message=(
            f"rendering took over {seconds:.0f} s and was stopped. python-markdown is slow on "
            "long paragraphs full of '[' or links; the longest paragraph starts here "
            f"({size:,} characters): split it or remove the run."
        ),
    )


def _longest_paragraph(text: str) -> tuple[int, int]:
    """(line offset from text's first line, length) of its longest run of non-blank lines."""
    best_start = best_size = start = size = 0
    for number, line in enumerate(text.split("\n")):
        if not line.strip():
            size = 0
            continue
        if not size:
            start = number
        size += len(line) + 1
        if size > best_size:
            best_start, best_size = start, size
    return best_start, best_size


def _child(parent: int, seconds: float) -> None:
    if not die_with(parent):
        sys.exit(1)  # the parent was gone before the lifeline took hold
    cpu = int(seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    items = json.loads(sys.stdin.buffer.read())
    rendered = [markdown_render(text=i["text"], first_line=i["first_line"]) for i in items]
    sys.stdout.buffer.write(pickle.dumps(rendered))


if __name__ == "__main__":
    _child(parent=int(sys.argv[1]), seconds=float(sys.argv[2]))
