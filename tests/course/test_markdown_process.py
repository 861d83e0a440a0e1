"""course.markdown_process: a lesson body rendered in a child process that is stopped at its
time limit and never outlives the process that started it. Real child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from course.markdown import markdown_render
from course.markdown_process import RenderTooSlow, markdown_render_bounded

ROOT = Path(__file__).resolve().parents[2]
# python-markdown needs minutes for this (quadratic in the paragraph's length).
SLOW_PARAGRAPH = "[" * 40_000
BODY = "## Start\n\nSome *text* and a [link](/lessons/x/).\n\n```quiz\nid: q\n```\n"


def renderers() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if "course.markdown_process" in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_the_child_renders_what_markdown_render_renders() -> None:
    bounded = markdown_render_bounded(text=BODY, first_line=7, seconds=10)
    here = markdown_render(text=BODY, first_line=7)
    assert bounded.html == here.html
    assert bounded.toc == here.toc
    assert bounded.quizzes == here.quizzes
    assert bounded.parts == here.parts
    assert bounded.links == here.links


def test_a_slow_render_is_stopped_and_names_the_longest_paragraph() -> None:
    text = f"## Intro\n\nA short one.\n\n{SLOW_PARAGRAPH}\n\nThe end.\n"
    with pytest.raises(RenderTooSlow) as caught:
        markdown_render_bounded(text=text, first_line=10, seconds=1)
    assert caught.value.line == 14  # the paragraph is the text's fifth line
    assert "over 1 s" in caught.value.message
    assert "40,001 characters" in caught.value.message
    assert not [p for p in renderers() if p.ppid() == os.getpid()]


def test_the_child_dies_with_the_process_that_started_it() -> None:
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from course.markdown_process import markdown_render_bounded as r;"
            f"r(text='{SLOW_PARAGRAPH}', seconds=600)",
        ],
        cwd=ROOT,
    )
    child: psutil.Process | None = None
    try:
        deadline = time.monotonic() + 30
        while not [p for p in renderers() if p.ppid() == starter.pid]:
            assert time.monotonic() < deadline, "the renderer never started"
            time.sleep(0.05)
        child = next(p for p in renderers() if p.ppid() == starter.pid)
        while child.cpu_times().user < 1.0:  # it has read its input and is rendering
            assert time.monotonic() < deadline, "the renderer never got to work"
            time.sleep(0.05)
        os.kill(starter.pid, signal.SIGKILL)
        starter.wait()
        gone, _ = psutil.wait_procs([child], timeout=10)
        assert gone == [child]
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        if child is not None and child.is_running():
            child.kill()  # only when the test failed: leave no renderer behind anyway
