"""``make helm-lint``: render, lint and validate the chart; lint the Dockerfiles.

Steps (all run, then one summary; the exit code is 1 when any step found a problem):

1. values   every value documented (``## @param``), values.schema.json regenerated and current
2. render   the chart renders with its defaults and with every ``ci/*-values.yaml``
3. helm     ``helm lint --strict`` for each value set (Helm v4 engine of helm-python-sdk)
4. kube     every manifest validates against the Kubernetes 1.30 schemas (strict)
5. checkov  checkov's Kubernetes checks pass; each accepted finding is skipped with a reason
6. hadolint docker/*.Dockerfile are clean
7. agree    ports, probe paths, model names, image tag and packages agree with the catalog,
            visionserve.settings, the CLI and the Dockerfiles

Usage: ``python -m helm.lint [--only values,render,...]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import helm_python

from helm import chart as chart_mod
from helm._errors import ChartError
from helm.checkov_scan import run_checkov
from helm.consistency import check_adapter_rule, check_dockerfiles, check_render, check_values
from helm.dockerfiles import dockerfiles, run_hadolint
from helm.kube_schemas import validate_manifests
from helm.schema import CHART_DIR, render_schema
from visionserve.catalog import load_catalog
from visionserve.errors import VisionServeError

__all__ = ["STEPS", "LintContext", "main", "run"]


@dataclass
class LintContext:
    """State shared by the steps: the value sets and what rendering produced."""

    value_sets: list[chart_mod.ValueSet] = field(default_factory=chart_mod.value_sets)
    rendered: dict[str, chart_mod.Rendered] = field(default_factory=dict)

    def ensure_rendered(self) -> None:
        for value_set in self.value_sets:
            if value_set.name not in self.rendered:
                self.rendered[value_set.name] = chart_mod.render(value_set)


@dataclass(frozen=True)
class StepResult:
    """Outcome of one step: problems (empty = passed) and a one-line detail."""

    problems: list[str]
    detail: str = ""


def _values(ctx: LintContext) -> StepResult:
    expected = render_schema()
    current = (CHART_DIR / "values.schema.json").read_text()
    problems = (
        [] if current == expected else ["values.schema.json is stale: run `.venv/bin/python -m helm.schema`"]
    )
    return StepResult(problems, "every value documented; schema generated from values.yaml")


def _render(ctx: LintContext) -> StepResult:
    problems: list[str] = []
    for value_set in ctx.value_sets:
        try:
            ctx.rendered[value_set.name] = chart_mod.render(value_set)
        except ChartError as exc:
            problems.append(str(exc))
    count = sum(len(r.manifests) for r in ctx.rendered.values())
    names = ", ".join(v.name for v in ctx.value_sets)
    return StepResult(problems, f"{len(ctx.value_sets)} value sets ({names}), {count} manifests")


def _helm_lint(ctx: LintContext) -> StepResult:
    problems: list[str] = []
    for value_set in ctx.value_sets:
        problems += chart_mod.lint_chart(value_set)
    return StepResult(problems, f"strict, kube {chart_mod.KUBE_VERSION}")


def _kube(ctx: LintContext) -> StepResult:
    ctx.ensure_rendered()
    version = chart_mod.KUBE_VERSION.lstrip("v")
    problems: list[str] = []
    for name, rendered in ctx.rendered.items():
        problems += validate_manifests(rendered.manifests, version, label=name)
    count = sum(len(r.manifests) for r in ctx.rendered.values())
    return StepResult(problems, f"{count} manifests against Kubernetes {version} (strict)")


def _checkov(ctx: LintContext) -> StepResult:
    ctx.ensure_rendered()
    report = run_checkov({name: [doc for _, doc in r.manifests] for name, r in ctx.rendered.items()})
    skips = ", ".join(sorted({check for check, _ in report.skipped}))
    return StepResult(
        report.problems(),
        f"{report.passed} passed, {len(report.failed)} failed, skipped by the chart: {skips}",
    )


def _hadolint(ctx: LintContext) -> StepResult:
    paths = dockerfiles()
    return StepResult(run_hadolint(paths), ", ".join(p.name for p in paths))


def _agree(ctx: LintContext) -> StepResult:
    ctx.ensure_rendered()
    catalog = load_catalog()
    with helm_python.Chart.load(CHART_DIR) as chart:
        defaults = chart.values
        problems = (
            check_values(defaults, catalog) + check_dockerfiles(defaults) + check_adapter_rule(defaults)
        )
        for value_set in ctx.value_sets:
            merged = chart.merge_values(value_set.values())
            problems += check_render(ctx.rendered[value_set.name], merged, catalog)
    return StepResult(problems, f"catalog models {', '.join(catalog.names)}; ports, probes, images, CLI")


#: name -> (title, step function), in execution order.
STEPS: dict[str, tuple[str, Callable[[LintContext], StepResult]]] = {
    "values": ("values documented, schema current", _values),
    "render": ("render every value set", _render),
    "helm": ("helm lint --strict", _helm_lint),
    "kube": ("Kubernetes schema validation", _kube),
    "checkov": ("checkov Kubernetes checks", _checkov),
    "hadolint": ("hadolint Dockerfiles", _hadolint),
    "agree": ("chart agrees with catalog, settings, CLI, Dockerfiles", _agree),
}


def run(steps: list[str] | None = None, out: Callable[[str], None] = print) -> list[tuple[str, list[str]]]:
    """Run the named steps (all by default), printing progress; returns (step, problems) pairs."""
    helm_python.disable_logging()
    chosen = steps or list(STEPS)
    ctx = LintContext()
    results: list[tuple[str, list[str]]] = []
    for number, name in enumerate(chosen, start=1):
        title, func = STEPS[name]
        out(f"[{number}/{len(chosen)}] {title} ...")
        started = time.monotonic()
        try:
            result = func(ctx)
        except (VisionServeError, helm_python.HelmError, OSError, KeyError) as exc:
            result = StepResult([f"{type(exc).__name__}: {exc}"], "could not run")
        elapsed = time.monotonic() - started
        status = "ok" if not result.problems else f"FAILED ({len(result.problems)} problem(s))"
        out(f"      {status} in {elapsed:.1f} s: {result.detail}")
        for problem in result.problems:
            out(f"      - {problem}")
        results.append((name, result.problems))
    return results


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit 0 when every step passed, 1 otherwise, 2 on bad arguments."""
    parser = argparse.ArgumentParser(prog="python -m helm.lint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated steps to run (of: {', '.join(STEPS)})")
    args = parser.parse_args(argv)
    steps = None
    if args.only:
        steps = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            parser.error(f"unknown step(s) {unknown}; choose from {', '.join(STEPS)}")
    started = time.monotonic()
    results = run(steps)
    failed = [(name, problems) for name, problems in results if problems]
    print()
    if failed:
        total = sum(len(p) for _, p in failed)
        print(
            f"helm-lint: FAILED: {total} problem(s) in {', '.join(n for n, _ in failed)} "
            f"({time.monotonic() - started:.0f} s)"
        )
        return 1
    print(f"helm-lint: all {len(results)} steps passed ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
