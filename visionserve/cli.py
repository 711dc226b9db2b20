"""The `visionserve` console script: one dispatcher, subcommands owned by each component.

Each subcommand lives in the component that implements it and is imported only when used,
so `visionserve classify` never pays for importing TensorFlow.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Collection

from visionserve.errors import VisionServeError

__all__ = ["COMMANDS", "main", "subcommand"]

#: subcommand -> ("module", "function", help). Each function takes argv and returns an exit code.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "export": ("export.cli", "export_main", "export models and publish a new repository version"),
    "rollback": ("export.cli", "rollback_main", "serve an earlier version of a model again"),
    "versions": ("export.cli", "versions_main", "list the versions of each model in the repository"),
    "release": ("gateway.release_cli", "main", "canary releases: start, status (verdict), promote, abort"),
    "serve": ("serving.cli", "main", "run the bundled tritonserver on the model repository"),
    "classify": ("client._main", "classify_main", "classify image files through Triton"),
    "classify-video": ("client._main", "classify_video_main", "classify a short video's sampled frames through Triton"),
    "models": ("client._main", "models_main", "list served models, versions and readiness"),
    "health": ("client._main", "health_main", "check that Triton is live and ready"),
    "gateway": ("gateway.cli", "serve_main", "run the BentoML gateway"),
    "keys": ("gateway.cli", "keys_main", "create, list and revoke gateway API keys"),
    "up": ("gateway.up", "main", "run tritonserver and the gateway together"),
    "loadtest": ("loadtest.run", "main", "run a headless Locust load test"),
    "bench": ("bench.cli", "main", "run side-by-side benchmarks"),
    "drills": ("drills.cli", "main", "run the reliability drills (faults, abuse, soak) on a local stack"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items())
    return f"usage: visionserve <command> [options]\n\ncommands:\n{rows}\n\n`visionserve <command> -h` for options."


def subcommand(argv: list[str], names: Collection[str], usage: str, unknown: str) -> tuple[str, list[str]] | int:
    """The subcommand ``argv`` names and its arguments; or, for help or an unknown name, the exit code.

    Shared by every dispatcher (``visionserve``, ``visionserve bench``) so they answer help and
    typos alike: usage on stdout (exit 0; 2 without any argument), ``<unknown> 'name'`` and the
    usage on stderr (exit 2).
    """
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage)
        return 0 if argv else 2
    if argv[0] not in names:
        print(f"{unknown} {argv[0]!r}\n\n{usage}", file=sys.stderr)
        return 2
    return argv[0], argv[1:]


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand; VisionServeError becomes a one-line message and exit 1."""
    chosen = subcommand(
        list(sys.argv[1:] if argv is None else argv), COMMANDS, _usage(), "visionserve: unknown command"
    )
    if isinstance(chosen, int):
        return chosen
    name, rest = chosen
    module, func, _ = COMMANDS[name]
    try:
        return int(getattr(importlib.import_module(module), func)(rest) or 0)
    except VisionServeError as exc:
        print(f"visionserve {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
