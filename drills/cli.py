"""``visionserve drills`` / ``make drills``: run every drill on a local stack, write the table.

One stack (Triton on the smallest catalog model, Redis, PostgreSQL, a 2-worker gateway) is
started for the run, on a private copy of that model's repository (the publishing drills write
new versions into it, never into ``model_repository/``), and stopped at the end, by process
group. Each drill's row goes to ``reports/drills.md``; ``--update-docs`` also replaces the
table in ``docs/reliability.md``.
Exit status 1 when any drill failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

from drills import abuse, access, faults, hostile, publish, soak
from drills.report import DrillResult, render_table, update_docs, write_report
from drills.stack import DrillStack, copy_repository
from visionserve.settings import PROJECT_ROOT

__all__ = ["DRILLS", "main"]


def _drills(soak_s: float) -> dict[str, Callable[[DrillStack], DrillResult]]:
    return {
        "hostile": hostile.run,
        "access": access.run,
        "triton": faults.triton_kill,
        "redis": faults.redis_restart,
        "postgres": faults.postgres_restart,
        "publish": publish.publish_under_load,
        "broken-version": publish.broken_version,
        "rate-limit": abuse.rate_limit,
        "event-loop": abuse.event_loop,
        "soak": lambda stack: soak.run(stack, duration_s=soak_s),
    }


DRILLS = tuple(_drills(1.0))


def _run(
    table: dict[str, Callable[[DrillStack], DrillResult]], names: list[str], stack: DrillStack
) -> list[DrillResult]:
    results: list[DrillResult] = []
    for name in names:
        print(f"drill {name} …", flush=True)
        try:
            result = table[name](stack)
        except Exception as exc:  # noqa: BLE001 - a drill that breaks is a failed row, the rest still run
            traceback.print_exc()
            result = DrillResult(name, "(drill raised)", f"{type(exc).__name__}: {exc}"[:300], False, ("ran",))
        print(f"  {'pass' if result.passed else 'FAIL'}: {result.figure}", flush=True)
        results.append(result)
    return results


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="visionserve drills", description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help=f"comma-separated drills (default: all of {', '.join(DRILLS)})")
    p.add_argument("--soak-s", type=float, default=600.0, help="length of the soak in seconds (CI: 60)")
    p.add_argument("--report", type=Path, default=PROJECT_ROOT / "reports" / "drills.md")
    p.add_argument("--update-docs", action="store_true", help="also write the table into docs/reliability.md")
    args = p.parse_args(argv)
    table = _drills(args.soak_s)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        p.error(f"unknown drills {unknown}; known: {', '.join(table)}")
    command = "visionserve drills " + " ".join(argv)
    with tempfile.TemporaryDirectory(prefix="visionserve-drills-") as tmp:
        workdir = Path(tmp)
        with DrillStack(workdir, repository=copy_repository(workdir / "model_repository")) as stack:
            results = _run(table, names, stack)
    write_report(results, args.report, command)
    if args.update_docs:
        update_docs(results, PROJECT_ROOT / "docs" / "reliability.md", command)
    print(render_table(results))
    print(f"\nwritten to {args.report}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
