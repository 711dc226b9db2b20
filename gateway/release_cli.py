"""``visionserve release start|status|promote|abort`` — what the ``make release-*`` targets run.

``start``, ``promote`` and ``abort`` change the labels in the model repository and the live
Triton (``export.release``); ``status`` reads the history database the gateways write
(``DATABASE_URL``, as the gateway) and prints the figures and the verdict; ``--auto`` promotes
or aborts once the verdict is reached (``--watch`` keeps asking until then).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from export.publish import TritonControl
from export.release import abort_release, current_labels, promote_release, start_release
from gateway.release_figures import ReleaseFigures, read_figures, verdict_of
from gateway.verdict import Verdict
from visionserve.catalog import ModelSpec, ReleasePolicy, load_catalog
from visionserve.errors import RepositoryError
from visionserve.settings import DEFAULT_GRPC_PORT, repository_path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionserve release", description="Canary releases with a verdict.")
    sub = parser.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("model", help="catalog model")
    common.add_argument("--repository", type=Path, default=None, help="model repository (default: model_repository/)")
    common.add_argument(
        "--server-url",
        default=os.environ.get("TRITON_GRPC_URL", f"127.0.0.1:{DEFAULT_GRPC_PORT}"),
        help="gRPC address of the running tritonserver ('' to change the repository only)",
    )
    common.add_argument("--catalog", type=Path, default=None, help="models.yaml to use")
    start = sub.add_parser("start", parents=[common], help="serve a version as the canary beside stable")
    start.add_argument("--version", type=int, required=True, help="the published version to try")
    start.add_argument("--weight", type=float, default=10.0, help="percent of API keys routed to it (default 10)")
    start.add_argument(
        "--shadow",
        type=float,
        nargs="?",
        const=1.0,
        default=0.0,
        metavar="FRACTION",
        help="also send stable-routed requests to the canary after answering (all, or this fraction)",
    )
    status = sub.add_parser("status", parents=[common], help="figures and verdict of the running release")
    status.add_argument("--min-agreement", type=float, default=None)
    status.add_argument("--max-error-increase", type=float, default=None, help="absolute, e.g. 0.005")
    status.add_argument("--max-p99-ratio", type=float, default=None)
    status.add_argument("--min-latency-samples", type=int, default=None)
    status.add_argument("--confidence", type=float, default=None)
    status.add_argument("--auto", action="store_true", help="promote or abort once the verdict is reached")
    status.add_argument("--watch", type=float, default=0.0, metavar="SECONDS", help="ask again until decided")
    status.add_argument("--interval", type=float, default=5.0, help="seconds between asks with --watch")
    status.add_argument("--json", action="store_true", help="print the figures as JSON")
    sub.add_parser("promote", parents=[common], help="make the canary stable")
    sub.add_parser("abort", parents=[common], help="send every request to stable and drop the canary")
    return parser


def _control(url: str) -> TritonControl | None:
    control = TritonControl.connect(url)
    if url and control is None:
        print(f"(no tritonserver answering at {url}: changing the repository only; a start serves it)")
    return control


def _policy(spec: ModelSpec, args: argparse.Namespace) -> ReleasePolicy:
    names = ("min_agreement", "max_error_increase", "max_p99_ratio", "min_latency_samples", "confidence")
    given = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    return ReleasePolicy.model_validate({**spec.release.model_dump(), **given})


def _engine():  # noqa: ANN202 - SQLAlchemy's Engine, imported lazily
    from gateway.db import make_engine
    from gateway.settings import GatewaySettings

    return make_engine(GatewaySettings().sqlalchemy_url)


def report(figures: ReleaseFigures, verdict: Verdict) -> dict:
    """The figures and the verdict as plain data (``--json``, and what ``_print`` shows)."""
    s, c = figures.stable, figures.canary
    mean_delta, p95_delta = figures.confidence_change()
    weight = figures.labels.weight
    needed = verdict.needed if verdict.decision == "hold" else 0
    more = needed if figures.labels.shadow >= 1.0 or not weight else round(needed / max(weight, 1e-9))
    return {
        "model": figures.model,
        "stable": s.version,
        "canary": c.version,
        "weight": weight,
        "shadow": figures.labels.shadow,
        "verdict": verdict.decision,
        "needed_samples": needed,
        "needed_requests": more,
        "pairs": len(figures.pairs),
        "agreement": figures.agreement,
        "confidence_change_mean": mean_delta,
        "confidence_change_p95": p95_delta,
        "flips": [{"stable": a, "canary": b, "count": n} for a, b, n in figures.flips()],
        "versions": {
            str(v.version): {
                "answers": v.answers,
                "errors": v.errors,
                "error_rate": v.error_rate,
                "round_trips": len(v.upstream_ms),
                "p50_ms": v.quantile_ms(0.5),
                "p99_ms": v.quantile_ms(0.99),
            }
            for v in (s, c)
        },
        "checks": [
            {
                "name": k.name,
                "state": k.state,
                "value": k.value,
                "bound": k.bound,
                "threshold": k.threshold,
                "needed": k.needed,
                "test": k.test,
            }
            for k in verdict.checks
        ],
    }


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)


def _print(data: dict) -> None:
    from rich.table import Table

    from visionserve.console import console as make_console

    console = make_console()
    console.print(
        f"[bold]{data['model']}[/]: stable v{data['stable']}, canary v{data['canary']} "
        f"(weight {data['weight']:.0%}, shadow {data['shadow']:.0%})"
    )
    versions = Table(title="per version")
    for col in ("version", "answers", "errors", "error rate", "round trips", "p50 ms", "p99 ms"):
        versions.add_column(col)
    for name, v in data["versions"].items():
        versions.add_row(
            name, str(v["answers"]), str(v["errors"]), _fmt(v["error_rate"]), str(v["round_trips"]),
            _fmt(v["p50_ms"], ".1f"), _fmt(v["p99_ms"], ".1f"),
        )  # fmt: skip
    console.print(versions)
    console.print(
        f"pairs {data['pairs']}, top-1 agreement {_fmt(data['agreement'])}, top-1 confidence change "
        f"mean {_fmt(data['confidence_change_mean'], '+.4f')}, p95 |Δ| {_fmt(data['confidence_change_p95'])}"
    )
    for flip in data["flips"]:
        console.print(f"  flip {flip['stable']} → {flip['canary']}: {flip['count']}")
    checks = Table(title="checks")
    for col in ("check", "state", "value", "bound", "threshold", "needed", "test"):
        checks.add_column(col)
    for k in data["checks"]:
        bound = "—" if k["bound"] is None else f"[{k['bound'][0]:.4f}, {k['bound'][1]:.4f}]"
        checks.add_row(
            k["name"], k["state"], _fmt(k["value"]), bound, f"{k['threshold']:g}", str(k["needed"]), k["test"]
        )
    console.print(checks)
    line = f"verdict: [bold]{data['verdict']}[/]"
    if data["verdict"] == "hold":
        line += f" — about {data['needed_requests']} more requests ({data['needed_samples']} more samples)"
    console.print(line)


def _status(spec: ModelSpec, repo: Path, args: argparse.Namespace) -> int:
    labels = current_labels(repo, spec)
    if not labels.active:
        raise RepositoryError(f"no release of {spec.name} is running (stable v{labels.stable})")
    policy, engine = _policy(spec, args), _engine()
    deadline = time.monotonic() + args.watch
    try:
        while True:
            figures = read_figures(engine, spec.name, labels)
            verdict = verdict_of(figures, policy)
            data = report(figures, verdict)
            print(json.dumps(data)) if args.json else _print(data)
            if verdict.decision != "hold" or time.monotonic() >= deadline:
                break
            time.sleep(args.interval)
    finally:
        engine.dispose()
    if args.auto and verdict.decision != "hold":
        control = _control(args.server_url)
        try:
            if verdict.decision == "promote":
                promote_release(repo, spec, control)
                print(f"--auto: promoted {spec.name} v{labels.canary}")
            else:
                abort_release(repo, spec, control)
                print(f"--auto: rolled back to {spec.name} v{labels.stable}")
        finally:
            if control:
                control.close()
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    spec = load_catalog(args.catalog).get(args.model)
    repo = args.repository or repository_path()
    if args.action == "status":
        return _status(spec, repo, args)
    if args.action == "start" and not (0 <= args.weight <= 100 and 0 <= args.shadow <= 1):
        raise RepositoryError("--weight is a percentage (0-100) and --shadow a fraction (0-1)")
    control = _control(args.server_url)
    try:
        if args.action == "start":
            labels = start_release(
                repo, spec, args.version, weight=args.weight / 100.0, shadow=args.shadow, control=control
            )
            print(f"release {labels.release_id}: {spec.name} stable v{labels.stable}, canary v{labels.canary}")
        elif args.action == "promote":
            print(f"{spec.name} now serves v{promote_release(repo, spec, control)} (promoted)")
        else:
            print(f"{spec.name} serves v{abort_release(repo, spec, control)} alone (aborted)")
    finally:
        if control:
            control.close()
    return 0
