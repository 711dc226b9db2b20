"""The drills table: one row per drill (drill, what was done, figure, pass/fail), as Markdown."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCS_MARKERS", "DrillResult", "render_table", "update_docs", "write_report"]

#: docs/reliability.md keeps the latest table between these two lines.
DOCS_MARKERS = ("<!-- drills:begin -->", "<!-- drills:end -->")


@dataclass
class DrillResult:
    """What one drill did and showed.

    Args:
        drill: the drill's name.
        action: what was done (the fault or abuse, and the load beside it).
        figure: what was measured, in numbers.
        passed: whether every criterion of the drill held.
        failures: the criteria that did not hold (empty when passed).
    """

    drill: str
    action: str
    figure: str
    passed: bool
    failures: tuple[str, ...] = ()

    @classmethod
    def judge(cls, drill: str, action: str, figure: str, checks: dict[str, bool]) -> DrillResult:
        """A result that passes when every named check holds; the failed ones are listed."""
        failed = tuple(name for name, ok in checks.items() if not ok)
        return cls(drill, action, figure, not failed, failed)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(results: list[DrillResult]) -> str:
    """The Markdown table of ``results`` (a failed row names what did not hold)."""
    lines = ["| drill | what was done | figure | result |", "|---|---|---|---|"]
    for r in results:
        verdict = "pass" if r.passed else "**FAIL**: " + "; ".join(r.failures)
        lines.append(f"| {_cell(r.drill)} | {_cell(r.action)} | {_cell(r.figure)} | {_cell(verdict)} |")
    return "\n".join(lines)


def write_report(results: list[DrillResult], path: Path, command: str) -> Path:
    """Write ``reports/drills.md``: when, how, and the table."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Drills\n\n{stamp}, `{command}`\n\n{render_table(results)}\n")
    return path


def update_docs(results: list[DrillResult], path: Path, command: str) -> None:
    """Replace the table between ``DOCS_MARKERS`` in ``docs/reliability.md`` with this run's."""
    text = path.read_text()
    begin, end = DOCS_MARKERS
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{begin}\nLatest run: {stamp}, `{command}`.\n\n{render_table(results)}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path} has no {begin} … {end} block to replace")
    path.write_text(pattern.sub(lambda _m: block, text))
