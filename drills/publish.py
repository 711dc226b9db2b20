"""Publishing drills: a new version published under load, and a broken version that must not serve.

Both run against the stack's *private* repository copy (``copy_repository``): they write new
versions, which the project's ``model_repository/`` must never get from a drill.

- publish under load: the real ``visionserve export --model <smallest> --weights demo``
  (what ``make export`` runs) against the stack's Triton, while fresh images and one repeated
  image (a cache hit) flow through the gateway. Judged: no failed request, answers move to the
  new version, and no answer of the old version — cached or not — later than the gateway's
  1 s bound after the first answer of the new one.
- broken model version: a version whose backbone artifact is truncated is staged and committed
  exactly as an export commits one (``staging_dir`` + ``commit_staged``; it passes every
  on-disk check) and switched to with the real CLI. Judged: the switch exits non-zero with a
  message naming the broken version, the last good version keeps serving every request, the
  configs on disk still load (what a restarted Triton reads), and ``visionserve rollback`` works.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from drills.load import LoadLoop, Sample, unique_jpeg
from drills.report import DrillResult
from drills.stack import DrillStack
from export.publish import commit_staged, next_version, stage_copy
from export.repository import read_config, served_version
from serving.stack import run_visionserve
from visionserve.catalog import ARTIFACTS, ModelSpec, load_catalog
from visionserve.errors import RepositoryError
from visionserve.settings import repository_path

__all__ = ["broken_version", "publish_under_load", "stage_broken_version"]

#: How long after a new version first answers may an old version's answer still come (the
#: gateway's poll interval is at most 0.5 s; docs/gateway.md promises 1 s).
SWITCH_BOUND_S = 1.0
CLI_TIMEOUT_S = 900


def _spec(stack: DrillStack) -> ModelSpec:
    if stack.repository.resolve() == repository_path().resolve():
        raise RepositoryError(
            "publishing drills need a private repository: DrillStack(repository=copy_repository(...))"
        )
    return load_catalog().models[stack.model]


def _visionserve(stack: DrillStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI against the stack's repository and Triton (what ``make export``/``rollback`` run)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    where = ("--repository", str(stack.repository), "--server-url", stack.triton_grpc_url)
    return run_visionserve(*args, *where, env=env, timeout_s=CLI_TIMEOUT_S)


def _loads(stack: DrillStack, key: str, repeated: bytes) -> tuple[LoadLoop, LoadLoop]:
    """Fresh images (misses) and one repeated image (cache hits), paced so the export gets the cores."""
    misses = LoadLoop(stack.gateway_url, key, stack.model, concurrency=1, rate_per_s=5.0)
    repeats = LoadLoop(stack.gateway_url, key, stack.model, concurrency=1, rate_per_s=5.0, image=lambda: repeated)
    return misses.start(), repeats.start()


def _absolute(loop: LoadLoop, samples: list[Sample]) -> list[tuple[float, Sample]]:
    return [(loop.t0 + s.t_s, s) for s in samples]


def _run_under_load(
    stack: DrillStack, key: str, repeated: bytes, action: Callable[[], subprocess.CompletedProcess[str]]
) -> tuple[subprocess.CompletedProcess[str], float, float, list[tuple[float, Sample]], list[str]]:
    misses, repeats = _loads(stack, key, repeated)
    try:
        time.sleep(2.0)
        started = time.monotonic()
        proc = action()
        done = time.monotonic()
        time.sleep(3.0)
    finally:
        got = [(misses, misses.stop()), (repeats, repeats.stop())]
    samples = sorted((t, s) for loop, ss in got for t, s in _absolute(loop, ss))
    errors = [e for loop, _ in got for e in loop.errors]
    return proc, started, done, samples, errors


def _post(stack: DrillStack, key: str, image: bytes) -> dict:
    with stack.client(key) as http:
        r = http.post("/v1/classify", files={"image": ("p.jpg", image, "image/jpeg")}, data={"model": stack.model})
        return {"status": r.status_code, **(r.json() if r.status_code == 200 else {})}


def publish_under_load(stack: DrillStack, *, weights: str = "demo") -> DrillResult:
    """``visionserve export`` under load: 0 failed requests, the new version answers, no stale hit."""
    spec = _spec(stack)
    old = served_version(stack.repository, spec)
    key = stack.key()
    repeated = unique_jpeg()
    primed = [_post(stack, key, repeated) for _ in range(2)]  # the repeated image is cached under `old`
    proc, started, done, samples, errors = _run_under_load(
        stack, key, repeated, lambda: _visionserve(stack, "export", "--model", spec.name, "--weights", weights)
    )
    new = served_version(stack.repository, spec)
    probe = [_post(stack, key, repeated) for _ in range(2)]
    failed = [s for _, s in samples if s.status != 200]
    first_new = next((t for t, s in samples if s.version == new and new != old), None)
    late_old = [t for t, s in samples if s.version == old and first_new is not None and t > first_new]
    lag = (max(late_old) - first_new) if late_old and first_new is not None else 0.0
    after = [s for t, s in samples if t > done + SWITCH_BOUND_S]
    stale_hits = [s for t, s in samples if s.cached and s.version == old and first_new is not None
                  and t > first_new + SWITCH_BOUND_S]  # fmt: skip
    figure = (
        f"`visionserve export --model {spec.name} --weights {weights}` exit {proc.returncode} in "
        f"{done - started:.0f} s (v{old} -> v{new}); {len(samples)} requests meanwhile (fresh + repeated image), "
        f"{len(failed)} failed {sorted({s.status for s in failed}) if failed else ''}; first v{new} answer "
        f"{(first_new - started) if first_new else float('nan'):.1f} s into the export, last v{old} answer "
        f"{lag:.2f} s after it; after the export {sum(1 for s in after if s.version == new)}/{len(after)} answered "
        f"v{new}; {len(stale_hits)} stale cache hits; repeated image after: "
        f"{[(p.get('version'), p.get('cached')) for p in probe]} (before: "
        f"{[(p.get('version'), p.get('cached')) for p in primed]})"
    )
    if proc.returncode != 0:
        figure += f"; export output: {(proc.stdout + proc.stderr)[-300:]}"
    return DrillResult.judge(
        "publish under load",
        f"`visionserve export` (make export) of {spec.name} while fresh and repeated images flow through the gateway",
        figure,
        {
            "export succeeded": proc.returncode == 0 and new is not None and old is not None and new > old,
            "0 failed requests": not failed and not errors,
            "answers switch to the new version": bool(after) and all(s.version == new for s in after),
            "no stale cache hit": not stale_hits
            and lag <= SWITCH_BOUND_S
            and all(p.get("version") == new for p in probe),
        },
    )


def stage_broken_version(repo: Path, spec: ModelSpec) -> int:
    """Commit version N+1 of ``spec`` as an export would, but with its served backbone truncated.

    Every file an export writes is there (configs, preprocess model, labels, the version.json
    commit marker); only the artifact is cut in half, which no on-disk check notices and Triton
    fails to load. Returns the new version.
    """
    current = served_version(repo, spec)
    if current is None:
        raise RepositoryError(f"{spec.name} has no served version in {repo}")
    version = next_version(repo, spec)
    staging = stage_copy(repo, spec, current, version)
    artifact = staging / spec.backbone_model() / str(version) / ARTIFACTS[spec.serve_format]
    data = artifact.read_bytes()
    artifact.unlink()  # a hard link to the served version's file: replace it, never write through
    artifact.write_bytes(data[: len(data) // 2])
    commit_staged(staging, repo, spec, version)
    return version


def _configs_pin(repo: Path, spec: ModelSpec, version: int) -> bool:
    """Whether the ensemble and the models its steps run pin exactly ``version`` (what a restart loads)."""
    names = [spec.ensemble, spec.preprocess_model, spec.backbone_model()]
    return all(list(read_config(repo / n / "config.pbtxt").version_policy.specific.versions) == [version]
               for n in names)  # fmt: skip


def broken_version(stack: DrillStack) -> DrillResult:
    """A committed version with a truncated artifact: the switch fails loudly, the good one serves."""
    spec = _spec(stack)
    good = served_version(stack.repository, spec)
    key = stack.key()
    repeated = unique_jpeg()
    broken = stage_broken_version(stack.repository, spec)
    proc, started, done, samples, errors = _run_under_load(
        stack, key, repeated, lambda: _visionserve(stack, "rollback", "--model", spec.name, "--version", str(broken))
    )
    message = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
    still = served_version(stack.repository, spec)
    configs_ok = good is not None and _configs_pin(stack.repository, spec, good)
    back = _visionserve(stack, "rollback", "--model", spec.name, "--version", str(good))
    probe = _post(stack, key, unique_jpeg())
    failed = [s for _, s in samples if s.status != 200]
    versions = sorted({s.version for _, s in samples if s.status == 200}, key=str)
    figure = (
        f"v{broken} committed with a truncated {ARTIFACTS[spec.serve_format]} and switched to "
        f"(`visionserve rollback --version {broken}`): exit {proc.returncode} in {done - started:.1f} s, "
        f"{message[0][:220]!r}; {len(samples)} requests meanwhile, {len(failed)} failed, versions answered "
        f"{versions}; served on disk v{still}, configs pin v{good}: {configs_ok}; "
        f"`visionserve rollback --version {good}` exit {back.returncode}; then answered v{probe.get('version')}"
    )
    return DrillResult.judge(
        "broken model version",
        f"a version of {spec.name} with a truncated backbone committed and published under load, then rolled back",
        figure,
        {
            "the publish reports failure": proc.returncode != 0
            and f"v{broken}" in message[0]
            and "failed to load" in message[0],
            "the last good version keeps serving": not failed and not errors and versions == [good] and still == good,
            "a restart would load the good version": configs_ok,
            "rollback works": back.returncode == 0 and probe.get("status") == 200 and probe.get("version") == good,
        },
    )
