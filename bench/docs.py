"""Writes each benchmark's last figures into docs/benchmarks.md, between its markers.

The prose of that file is written by hand; only the blocks between
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->` (and the summary) are rewritten, and only
for benchmarks that produced figures: a skipped run leaves the last real figures in place.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from .common import ROOT, Report, machine_line

DOCS = ROOT / "docs" / "benchmarks.md"
TARGET_ROW = re.compile(r"^\| (?!target \|)(?!---)(.+) \|$", re.M)


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- bench:{name} -->\n)(.*?)(<!-- /bench:{name} -->)", re.S)


def _render(report: Report, command: str, when: str) -> str:
    if report.skipped is not None:
        return f"Not measured yet: skipped on {when} ({report.skipped}).\n"
    lines = [
        f"Last run: {when}, `{command}`, {machine_line()}.",
        "",
        "```text",
        *report.text,
        "```",
        "",
        f"<!-- targets:{report.name} -->",
    ]
    if report.targets:
        lines += ["| target | goal | measured | verdict |", "| --- | --- | --- | --- |"]
        lines += [f"| {t.name} | {t.goal} | {t.measured} | {t.verdict} |" for t in report.targets]
    lines.append(f"<!-- /targets:{report.name} -->")
    return "\n".join(lines) + "\n"


def _summary(text: str, names: list[str]) -> str:
    rows = []
    for name in names:
        block = _block(name).search(text)
        when = re.search(r"Last run: ([^,]+),", block.group(2)) if block else None
        targets = re.search(rf"<!-- targets:{name} -->\n(.*?)<!-- /targets:{name} -->", text, re.S)
        if not targets:
            rows.append(f"| {name} | (not measured yet) | | | | |")
            continue
        for row in TARGET_ROW.findall(targets.group(1)):
            rows.append(f"| {name} | {row} | {when.group(1) if when else ''} |")
    header = [
        "| benchmark | target | goal | measured | verdict | run |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    return "\n".join(header + rows) + "\n"


def docs_update(
    reports: list[Report], *, command: str, names: list[str], path: Path = DOCS
) -> Path:
    """Rewrite the blocks of the benchmarks that ran (skips only fill empty blocks);
    `names` are every benchmark, in the order of the summary."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    for report in reports:
        pattern = _block(report.name)
        match = pattern.search(text)
        if report.skipped is not None and match and "Last run:" in match.group(2):
            continue  # keep the last real figures
        body = _render(report, command, when)
        if match:
            text = text[: match.start(2)] + body + text[match.end(2) :]
        else:
            text += f"\n<!-- bench:{report.name} -->\n{body}<!-- /bench:{report.name} -->\n"
    summary = _block("summary")
    body = _summary(text, names)
    match = summary.search(text)
    if match:
        text = text[: match.start(2)] + body + text[match.end(2) :]
    else:
        text += f"\n<!-- bench:summary -->\n{body}<!-- /bench:summary -->\n"
    path.write_text(text)
    return path
