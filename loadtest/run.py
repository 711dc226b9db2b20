"""``visionserve loadtest`` / ``make loadtest``: a Locust run with reports, a summary and a verdict.

Headless by default: runs Locust on one user locustfile (``--target gateway|grpc|http``),
optionally with a load shape (``--shape step|soak``), writes CSV and HTML under
``reports/loadtest/<target>-<time>/``, prints a summary table and exits 1 when the error rate
or the p95 exceeds the thresholds given (``--max-error-rate``, ``--max-p95-ms``). ``--ui``
runs Locust's web UI on the same locustfile instead.

Without ``--host`` it starts the local stack itself — ``visionserve up`` on free ports for the
gateway (with an API key made for the run), the bundled tritonserver alone for grpc/http — and
stops it afterwards. Options it does not know go to Locust unchanged (``--processes 2``, or
``--master --expect-workers 4`` — Locust takes one or the other —, ``--repeat-share 0.3``…).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

from loadtest.results import Thresholds, evaluate, format_summary, read_failures, read_stats
from serving.processes import signal_group, spawn, stop_group
from serving.stack import GatewayStack, start_triton
from visionserve.catalog import load_catalog
from visionserve.errors import VisionServeError
from visionserve.settings import PROJECT_ROOT, repository_path

__all__ = ["TARGETS", "LoadTestError", "Target", "locust_command", "main", "parse_duration_s"]

LOADTEST_DIR = Path(__file__).resolve().parent
#: Extra seconds Locust may take past --duration (spawning, stop timeout, report writing).
_GRACE_S = 120.0
_STOP_TIMEOUT_S = 10


class LoadTestError(VisionServeError):
    """A load test could not run (bad options, a stack that did not start, Locust failing)."""

    code = "loadtest"


@dataclass(frozen=True)
class Target:
    """What a ``--target`` loads: its locustfile, its user class, how its host is written."""

    locustfile: str
    user_class: str
    scheme: str


TARGETS: dict[str, Target] = {
    "gateway": Target("gateway_user.py", "GatewayUser", "http://"),
    "grpc": Target("triton_grpc_user.py", "TritonGrpcUser", ""),
    "http": Target("triton_http_user.py", "TritonHttpUser", "http://"),
}
SHAPES = {"step": "shape_step.py", "soak": "shape_soak.py"}


def parse_duration_s(text: str) -> float:
    """Locust's time strings (``30s``, ``5m``, ``1h30m``, or plain seconds) in seconds.

    Raises:
        LoadTestError: not a duration.
    """
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?", text)
    if not text or not match or not any(match.groups()):
        raise LoadTestError(f"not a duration: {text!r} (write e.g. 30s, 5m, 1h30m)")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="visionserve loadtest",
        allow_abbrev=False,  # unknown options go to Locust: never read them as abbreviations of ours
        description="Run a Locust load test headless (reports + verdict) or open Locust's web UI. "
        "Unknown options are passed to Locust.",
    )
    p.add_argument("--target", choices=sorted(TARGETS), default="gateway", help="what to load")
    p.add_argument("--host", default="", help="target address (default: start the local stack)")
    p.add_argument("--users", type=int, default=8, help="peak concurrent users")
    p.add_argument("--spawn-rate", type=float, default=4.0, help="users started per second")
    p.add_argument("--duration", default="30s", help="run time, e.g. 30s, 5m, 1h (soak: its length)")
    p.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default=None,
        help="step: 1→32 users (--step-users, --step-s); soak: --users for --duration",
    )
    p.add_argument(
        "--max-error-rate", type=float, default=0.0, help="fail when more than this share of requests fails (default 0)"
    )
    p.add_argument("--max-p95-ms", type=float, default=None, help="fail when the p95 exceeds this")
    p.add_argument(
        "--processes",
        type=int,
        default=None,
        help="Locust processes on this machine (one core each); -1 = one per core",
    )
    p.add_argument("--ui", action="store_true", help="Locust's web UI instead of a headless run")
    p.add_argument("--web-port", type=int, default=8089, help="port of the web UI")
    p.add_argument(
        "--api-key",
        default=os.environ.get("VISIONSERVE_API_KEY", ""),
        help="gateway API key for a remote --host (default: $VISIONSERVE_API_KEY)",
    )
    p.add_argument("--repository", default=None, help="model repository of the local stack")
    p.add_argument("--models", default="", help="model mix, e.g. resnet18=3,mobilenet_v2=1 (default: all)")
    p.add_argument("--report-dir", default=str(PROJECT_ROOT / "reports" / "loadtest"),
                   help="where each run's directory of reports goes")  # fmt: skip
    return p


def locust_command(
    target: Target,
    host: str,
    *,
    users: int,
    spawn_rate: float,
    duration: str,
    shape: str | None = None,
    ui: bool = False,
    web_port: int = 8089,
    processes: int | None = None,
    report_prefix: Path | None = None,
    extra: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """The Locust command line of a run.

    A shape decides users and duration itself (the soak shape reads ``-u``/``-t``), so the
    step shape gets neither. Headless runs write ``<prefix>_*.csv`` and ``<prefix>.html``;
    Locust's own failure exit code is turned off because the verdict is ours.
    """
    files = [str(LOADTEST_DIR / target.locustfile)]
    if shape:
        files.append(str(LOADTEST_DIR / SHAPES[shape]))
    cmd = [sys.executable, "-m", "locust", "-f", ",".join(files), "--host", host]
    if shape != "step":
        cmd += ["--users", str(users), "--spawn-rate", f"{spawn_rate:g}"]
    if ui:
        cmd += ["--web-host", "127.0.0.1", "--web-port", str(web_port)]
    else:
        cmd += ["--headless", "--only-summary", "--exit-code-on-error", "0", "--stop-timeout", str(_STOP_TIMEOUT_S)]
        if shape != "step":
            cmd += ["--run-time", f"{max(1, round(parse_duration_s(duration)))}s"]  # a form Locust accepts
        if report_prefix is not None:
            cmd += ["--csv", str(report_prefix), "--html", f"{report_prefix}.html"]
    if processes:
        cmd += ["--processes", str(processes)]
    return [*cmd, *extra, target.user_class]


def _extra_value(extra: list[str], flag: str) -> str | None:
    for i, arg in enumerate(extra):
        if arg == flag and i + 1 < len(extra):
            return extra[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _timeout_s(args: argparse.Namespace, extra: list[str]) -> float | None:
    if args.ui:
        return None
    if args.shape == "step":
        steps = (_extra_value(extra, "--step-users") or "1,2,4,8,16,32").split(",")
        return len(steps) * float(_extra_value(extra, "--step-s") or 30) + _GRACE_S
    return parse_duration_s(args.duration) + _GRACE_S


def _run_locust(cmd: list[str], timeout_s: float | None, log_path: Path | None) -> int:
    """Run Locust in its own process group; Ctrl-C / SIGTERM / the deadline stop it gracefully."""
    proc = spawn(cmd, log_path=log_path, cwd=PROJECT_ROOT)
    try:
        proc.wait(timeout_s)
    except (KeyboardInterrupt, subprocess.TimeoutExpired) as exc:
        stop_group(proc, signal.SIGINT, timeout_s=30)  # Locust writes its reports on SIGINT
        if isinstance(exc, KeyboardInterrupt):
            raise
        print(f"visionserve loadtest: Locust overran its run time by {_GRACE_S:.0f} s and was stopped",
              file=sys.stderr)  # fmt: skip
    finally:
        signal_group(proc.pid, signal.SIGKILL)  # --processes workers left behind, if any
    return int(proc.returncode or 0)


def _check_options(args: argparse.Namespace) -> list[str]:
    """Validate before anything starts; returns the catalog models of the mix."""
    if args.users < 1 or args.spawn_rate <= 0:
        raise LoadTestError("--users must be >= 1 and --spawn-rate > 0")
    if not 0 <= args.max_error_rate <= 1:
        raise LoadTestError(f"--max-error-rate is a share within [0, 1], got {args.max_error_rate}")
    if args.shape != "step":
        parse_duration_s(args.duration)
    from loadtest.mix import parse_mix

    try:
        return list(parse_mix(args.models, load_catalog()).names)
    except ValueError as exc:
        raise LoadTestError(str(exc)) from None


def _summarize(prefix: Path, thresholds: Thresholds, run_dir: Path) -> int:
    stats_path = Path(f"{prefix}_stats.csv")
    if not stats_path.exists():
        raise LoadTestError(f"Locust wrote no report ({stats_path}); see {run_dir / 'locust.log'}")
    rows = read_stats(stats_path)
    failures = read_failures(Path(f"{prefix}_failures.csv"))
    problems = evaluate(rows, thresholds)
    print(format_summary(rows, failures))
    summary = {
        "rows": [r.to_dict() for r in rows],
        "failures": [f.__dict__ for f in failures],
        "thresholds": thresholds.__dict__,
        "passed": not problems,
        "problems": problems,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nreports: {run_dir}/ (locust.html, locust_stats.csv, summary.json)")
    if problems:
        for problem in problems:
            print(f"FAILED: {problem}", file=sys.stderr)
        return 1
    print("PASSED: " + ", ".join(
        [f"error rate <= {thresholds.max_error_rate:.2%}"]
        + ([f"p95 <= {thresholds.max_p95_ms:g} ms"] if thresholds.max_p95_ms is not None else [])
    ))  # fmt: skip
    return 0


def _target_host(
    args: argparse.Namespace, names: list[str], run_dir: Path, extra: list[str], running: contextlib.ExitStack
) -> tuple[str, list[str]]:
    """Where Locust sends its load, and the options that go with it (API key, labels).

    Without ``--host`` the local stack of the target is started here and registered with
    ``running``, which stops it.
    """
    if args.host:
        if args.target == "gateway":
            if not args.api_key and _extra_value(extra, "--api-key") is None:
                raise LoadTestError("a remote gateway needs an API key: --api-key or VISIONSERVE_API_KEY")
            if args.api_key:
                extra = ["--api-key", args.api_key, *extra]
        return args.host, extra
    repository = Path(args.repository) if args.repository else repository_path()
    print(f"visionserve loadtest: starting the local stack ({args.target}) on {repository} …", flush=True)
    started = time.monotonic()
    if args.target == "gateway":
        stack = GatewayStack(repository, log_path=run_dir / "stack.log", models=names)
        running.callback(stack.stop)
        stack.start()
        host = stack.gateway_url
        extra = ["--api-key", stack.api_key, *extra]
    else:
        server = start_triton(repository, names, log_path=run_dir / "tritonserver.log")
        running.callback(server.stop)
        host = f"http://{server.http_url}" if args.target == "http" else server.grpc_url
    print(f"visionserve loadtest: ready in {time.monotonic() - started:.0f} s: {host}", flush=True)
    return host, ["--labels-dir", str(repository), *extra]


def main(argv: list[str]) -> int:
    """Run the load test; 0 when it passes its thresholds, 1 otherwise."""
    args, extra = _parser().parse_known_args(argv)
    names = _check_options(args)
    target = TARGETS[args.target]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.report_dir) / f"{args.target}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.models:
        extra = ["--models", args.models, *extra]

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    running = contextlib.ExitStack()
    try:
        host, extra = _target_host(args, names, run_dir, extra, running)
        if target.scheme and "://" not in host:
            host = target.scheme + host
        prefix = run_dir / "locust"
        cmd = locust_command(
            target, host, users=args.users, spawn_rate=args.spawn_rate, duration=args.duration,
            shape=args.shape, ui=args.ui, web_port=args.web_port, processes=args.processes,
            report_prefix=None if args.ui else prefix, extra=extra,
        )  # fmt: skip
        if args.ui:
            print(f"visionserve loadtest: Locust UI on http://127.0.0.1:{args.web_port} (Ctrl-C to stop)", flush=True)
            _run_locust(cmd, None, None)
            return 0
        load = f"shape {args.shape}" if args.shape else f"{args.users} users for {args.duration}"
        print(f"visionserve loadtest: {target.user_class} → {host}, {load}", flush=True)
        code = _run_locust(cmd, _timeout_s(args, extra), run_dir / "locust.log")
        if code != 0:
            tail = (run_dir / "locust.log").read_text(errors="replace").splitlines()[-15:]
            raise LoadTestError(f"Locust exited with status {code}:\n" + "\n".join(tail))
        thresholds = Thresholds(max_error_rate=args.max_error_rate, max_p95_ms=args.max_p95_ms)
        return _summarize(prefix, thresholds, run_dir)
    except KeyboardInterrupt:
        print("\nvisionserve loadtest: interrupted", file=sys.stderr)
        return 130
    finally:
        running.close()  # the local stack, if this run started one
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
