"""Publish a new version of a model, switch the served version, roll back, prune.

A version is the whole pipeline: backbones, preprocess model and ensemble all get directory
``V``, and the ensemble pins ``V`` for both steps. Publishing builds everything in a staging
directory beside the repository (same filesystem), renames the composing models' ``V/`` into
place and the ensemble's ``V/`` (holding ``version.json``, the commit marker) last. A version
exists iff its marker does; anything else left by a killed export is an orphan that the next
export removes, and the previous version is never touched.

Switching a running server (explicit model control, repository API) keeps it answering:
1. composing models are reloaded serving both the old and the new version;
2. the ensemble is reloaded pinned to the new version (Triton swaps it once loaded);
3. composing models drop the old version; the ensemble is checked READY again (a reload of a
   composing model can unload its ensemble, triton-inference-server issue 4828).

A new version that fails to load in step 1 or 2 (a corrupt artifact that staging cannot see)
never serves: Triton keeps the old version loaded, the configs on disk go back to the old
version (else a restarted server would try the broken one and fail to start), the extra
instances are dropped, and the switch raises a ServerError that names the broken version.

Because every response and every cache key carries the ensemble version, no cache can return
an old answer for the new version.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path

from export.repository import (
    VERSION_FILE,
    atomic_write,
    committed_versions,
    pinned_elsewhere,
    pipeline_models,
    read_version,
    remove_version,
    served_version,
    tta_ensembles,
    write_composing_configs,
    write_ensemble_config,
)
from serving.launcher import read_repository_key, repository_key_headers
from visionserve.catalog import ModelSpec
from visionserve.errors import RepositoryError, ServerError
from visionserve.files import link_or_copy
from visionserve.release import read_labels, write_labels

__all__ = [
    "TritonControl",
    "commit_staged",
    "next_version",
    "prune",
    "remove_orphans",
    "staging_dir",
    "switch_version",
    "wait_ready",
]

Log = Callable[[str], None]


def _print(msg: str) -> None:
    print(msg, flush=True)


class TritonControl:
    """The few repository-API calls publishing needs, over gRPC (tritonclient).

    Every repository-API call carries the repository key (``key``, else
    ``$VISIONSERVE_TRITON_REPOSITORY_KEY``, else the file ``visionserve serve`` wrote), so
    publishing works against a server whose repository API is restricted; an open server
    ignores the header.
    """

    def __init__(self, url: str, timeout_s: float = 300.0, key: str | None = None) -> None:
        import tritonclient.grpc as grpcclient

        self.url = url
        self.timeout_s = timeout_s
        self._headers = repository_key_headers(key or read_repository_key(), "grpc")
        self._client = grpcclient.InferenceServerClient(url)

    @classmethod
    def connect(cls, url: str | None) -> TritonControl | None:
        """A control for a live server at ``url``, or None when none answers there."""
        if not url:
            return None
        try:
            control = cls(url)
            if control._client.is_server_live(client_timeout=2.0):
                return control
        except Exception:  # noqa: BLE001 - no server: publish to disk only
            pass
        return None

    def loaded(self) -> set[str]:
        from tritonclient.utils import InferenceServerException

        try:
            answer = self._client.get_model_repository_index(headers=self._headers, as_json=True)
        except InferenceServerException as exc:
            message = f"Triton at {self.url} refused its repository index: {exc.message()}{self._hint(exc)}"
            raise ServerError(message) from None
        index = answer.get("models", [])
        return {m["name"] for m in index if m.get("state") == "READY"}

    def load(self, name: str) -> None:
        from tritonclient.utils import InferenceServerException

        try:
            self._client.load_model(name, headers=self._headers, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise ServerError(f"Triton at {self.url} failed to load {name}: {exc.message()}{self._hint(exc)}") from None

    def unload(self, name: str) -> None:
        """Unload ``name`` only (its composing models stay: other ensembles run them)."""
        from tritonclient.utils import InferenceServerException

        try:
            self._client.unload_model(name, headers=self._headers, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            message = f"Triton at {self.url} failed to unload {name}: {exc.message()}{self._hint(exc)}"
            raise ServerError(message) from None

    def _hint(self, exc: Exception) -> str:
        if "restricted" not in str(exc):
            return ""
        return (
            " (its model-repository API is restricted: set VISIONSERVE_TRITON_REPOSITORY_KEY to the key "
            "in the server's .state/triton_repository_key)"
        )

    def ready(self, name: str, version: int | None = None) -> bool:
        try:
            return bool(self._client.is_model_ready(name, str(version or ""), client_timeout=5.0))
        except Exception:  # noqa: BLE001
            return False

    def close(self) -> None:
        with suppress(Exception):
            self._client.close()


def staging_dir(repo: Path, spec: ModelSpec, version: int) -> Path:
    """Beside the repository (same filesystem, so renames are atomic; Triton never scans it)."""
    return repo.resolve().parent / f".{repo.resolve().name}.staging" / f"{spec.name}-v{version}-{os.getpid()}"


def remove_orphans(repo: Path, spec: ModelSpec, log: Log = _print) -> None:
    """Drop version dirs without a commit marker and stale staging dirs of dead exports."""
    committed = set(committed_versions(repo, spec))
    for name in spec.triton_models:
        root = repo / name
        if not root.is_dir():
            continue
        for child in root.iterdir():
            if child.name.isdigit() and int(child.name) not in committed:
                log(f"  removing orphan {name}/{child.name} (left by an interrupted export)")
                shutil.rmtree(child, ignore_errors=True)
    staging_root = repo.resolve().parent / f".{repo.resolve().name}.staging"
    if staging_root.is_dir():
        for child in staging_root.glob(f"{spec.name}-v*-*"):
            pid = int(child.name.rsplit("-", 1)[1])
            if not _alive(pid):
                shutil.rmtree(child, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def next_version(repo: Path, spec: ModelSpec) -> int:
    """One above any version directory present (committed or not), so numbers are never reused."""
    seen = [0]
    for name in spec.triton_models:
        root = repo / name
        if root.is_dir():
            seen += [int(p.name) for p in root.iterdir() if p.name.isdigit()]
    return max(seen) + 1


def stage_copy(repo: Path, spec: ModelSpec, source: int, version: int) -> Path:
    """Stage ``version`` as committed version ``source``, file for file; returns the staging dir.

    Why: releases, drills and tests need a new version that is an existing one, byte for byte or
    with one deliberate change. Files are hard links where the filesystem allows (instant, no
    disk), so a caller changing a staged file must replace it (``atomic_write``, or unlink
    first), never write through it. Only the commit marker differs: its version number.
    Publish with ``commit_staged``.
    """
    staging = staging_dir(repo, spec, version)
    shutil.rmtree(staging, ignore_errors=True)
    for name in spec.triton_models:
        src = repo / name / str(source)
        if src.is_dir():
            shutil.copytree(src, staging / name / str(version), copy_function=link_or_copy)
    info = dataclasses.replace(read_version(repo, spec, source), version=version)
    atomic_write(staging / spec.ensemble / str(version) / VERSION_FILE, json.dumps(asdict(info), indent=2) + "\n")
    return staging


def commit_staged(staging: Path, repo: Path, spec: ModelSpec, version: int) -> None:
    """Rename each staged ``<model>/V`` into the repository; the ensemble's (the marker) last."""
    order = [*spec.triton_models[1:], spec.triton_models[0]]
    for name in order:
        src = staging / name / str(version)
        if not src.exists():
            continue
        dst = repo / name / str(version)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)
    shutil.rmtree(staging, ignore_errors=True)


def wait_ready(control: TritonControl, name: str, version: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if control.ready(name, version):
            return
        time.sleep(0.1)
    raise ServerError(f"{name} version {version} did not become ready within {timeout_s:.0f} s")


def switch_version(repo: Path, spec: ModelSpec, version: int, control: TritonControl | None, log: Log = _print) -> None:
    """Make ``version`` the served one, on disk and, if ``control`` is given, in the live server.

    Switching from a served version goes through a state where the composing models serve both
    versions: at every moment (and after a kill at any point) the ensemble's pinned version is
    one its steps serve, so a restarted server loads the repository as it is.
    """
    needed = set(pipeline_models(spec, read_version(repo, spec, version)))  # raises when it does not exist
    current = served_version(repo, spec)
    switching = current is not None and current != version and current in committed_versions(repo, spec)
    loaded = control.loaded() if control is not None else set()

    def reload(names: list[str]) -> None:
        if control is None:
            return
        for name in names:
            if name in loaded or name in needed:
                control.load(name)

    if switching:
        if control is not None:
            log(f"  loading {spec.name} v{version} beside v{current}")
        try:
            reload(write_composing_configs(repo, spec, sorted({current, version})))
            write_ensemble_config(repo, spec, version)
            if control is not None:
                control.load(spec.ensemble)
                wait_ready(control, spec.ensemble, version)
        except ServerError as exc:
            _keep_serving(repo, spec, current, control, loaded, log)
            reason = str(exc).splitlines()[0][:400]
            raise ServerError(
                f"{spec.name} v{version} failed to load, so it was not published: v{current} keeps serving "
                f"and the repository's configs are back on v{current} (v{version} stays on disk, unserved). "
                f"Cause: {reason}"
            ) from None
        if control is not None:
            log(f"  {spec.ensemble} now serves v{version}; unloading v{current}")
    reload(write_composing_configs(repo, spec, [version]))
    if not switching:
        write_ensemble_config(repo, spec, version)
    if control is not None:
        if not switching or not control.ready(spec.ensemble, version):  # issue 4828: a composing reload unloads it
            control.load(spec.ensemble)
        wait_ready(control, spec.ensemble, version)
        _sync_tta(repo, spec, version, control, loaded)
    labels = read_labels(repo, spec.ensemble)
    if labels is not None and labels.stable != version:  # the labels follow a plain switch (release labels)
        write_labels(repo, spec.ensemble, labels.ended(version))


def _sync_tta(repo: Path, spec: ModelSpec, version: int, control: TritonControl, loaded: set[str]) -> None:
    """Load the TTA ensembles ``version`` has (pinned to it); unload those it has not."""
    configured = set(tta_ensembles(repo, spec))
    for view in spec.tta:
        name = spec.tta_ensemble(view)
        if name in configured:
            control.load(name)
            wait_ready(control, name, version)
        elif name in loaded:
            control.unload(name)


def _keep_serving(
    repo: Path, spec: ModelSpec, current: int, control: TritonControl | None, loaded: set[str], log: Log
) -> None:
    """After a failed switch: every config pinned to ``current`` again, on disk and in the server."""
    names = write_composing_configs(repo, spec, [current])
    write_ensemble_config(repo, spec, current)
    if control is None:
        return
    log(f"  the new version did not load: back to v{current} only")
    keep = set(pipeline_models(spec, read_version(repo, spec, current)))
    for name in names:
        if name in loaded or name in keep:
            try:
                control.load(name)  # drops the failed version's instances; the served one keeps running
            except ServerError as exc:
                log(f"  warning: reloading {name} on v{current} failed: {str(exc).splitlines()[0][:300]}")
    if not control.ready(spec.ensemble, current):  # issue 4828: a composing reload can unload the ensemble
        control.load(spec.ensemble)
    wait_ready(control, spec.ensemble, current)
    _sync_tta(repo, spec, current, control, loaded)


def prune(repo: Path, spec: ModelSpec, keep: int, log: Log = _print) -> list[int]:
    """Keep the newest ``keep`` versions and the served one; delete the rest. Returns removed."""
    versions = committed_versions(repo, spec)
    served = served_version(repo, spec)
    labels = read_labels(repo, spec.ensemble)
    canary = {labels.canary} if labels is not None and labels.canary is not None else set()
    keep_set = set(versions[-keep:]) | ({served} if served else set()) | canary | pinned_elsewhere(repo, spec)
    removed = [v for v in versions if v not in keep_set]
    for v in removed:
        remove_version(repo, spec, v)
    if removed:
        log(
            f"  pruned {spec.name} versions {removed} "
            f"(policy: keep the newest {keep}, the served one, a canary and those a committee pins)"
        )
    return removed


def require_version(repo: Path, spec: ModelSpec, version: int) -> None:
    if version not in committed_versions(repo, spec):
        have = committed_versions(repo, spec)
        raise RepositoryError(f"{spec.name} has no version {version} (versions on disk: {have or 'none'})")
