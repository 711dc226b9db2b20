"""Start, promote and abort a release: a canary version served beside the stable one.

The labels file (``visionserve.release``) is written first, as the intent; then the configs
on disk and, with a ``control``, the live server are made to follow it:

* **start**: the composing models serve ``[stable, canary]`` (``version_policy specific``),
  ``<name>_canary`` is an ensemble pinned to the canary for every step, with the canary's
  class labels and the release in its ``release`` parameter (what the gateway routes by). The
  stable ensemble is untouched. A canary that fails to load leaves stable alone, as before.
* **promote**: the stable ensemble switches to the canary (``switch_version``: no request
  fails), then, after ``drain_s`` (the gateway stops routing to a canary that equals stable at
  its next poll), the canary ensemble is unloaded and removed.
* **abort**: the canary ensemble is reloaded with no traffic, drained, unloaded and removed,
  and the composing models drop the canary's version.

A kill at any point leaves configs a restarted server loads, and the labels say what the next
``release`` command (or ``reconcile``) finishes.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import text_format

from export.publish import TritonControl, require_version, switch_version, wait_ready
from export.repository import (
    LABELS_FILE,
    atomic_write,
    ensemble_config,
    pipeline_models,
    read_version,
    served_version,
    write_composing_configs,
)
from visionserve.catalog import ModelSpec
from visionserve.errors import RepositoryError, ServerError
from visionserve.release import RELEASE_PARAMETER, ReleaseLabels, read_labels, write_labels

__all__ = ["DRAIN_S", "abort_release", "current_labels", "promote_release", "require_no_release", "start_release"]

Log = Callable[[str], None]
#: How long a canary ensemble keeps serving after the gateway was told to stop routing to it:
#: two gateway polls (``version_poll_interval_s`` is at most 0.5 s) and the requests in flight.
DRAIN_S = 1.5


def current_labels(repo: Path, spec: ModelSpec) -> ReleaseLabels:
    """The labels on disk, or (no file yet) ``stable`` = the served version and no canary."""
    labels = read_labels(repo, spec.ensemble)
    if labels is not None:
        return labels
    served = served_version(repo, spec)
    if served is None:
        raise RepositoryError(f"{spec.name} has no published version: run `make export MODEL={spec.name}` first")
    return ReleaseLabels(stable=served)


def require_no_release(repo: Path, spec: ModelSpec) -> None:
    """Refuse a plain switch (export, rollback) while a canary is on trial."""
    labels = read_labels(repo, spec.ensemble)
    if labels is not None and labels.active:
        raise RepositoryError(
            f"a release of {spec.name} is running (stable v{labels.stable}, canary v{labels.canary}): "
            f"`visionserve release promote|abort {spec.name}` first"
        )


def _write_canary_ensemble(repo: Path, spec: ModelSpec, labels: ReleaseLabels) -> None:
    """``<name>_canary``: the canary version's ensemble under its own name, labels file first."""
    assert labels.canary is not None
    info = read_version(repo, spec, labels.canary)
    root = repo / spec.canary_ensemble
    (root / str(labels.canary)).mkdir(parents=True, exist_ok=True)  # an ensemble's version directory is empty
    atomic_write(root / LABELS_FILE, (repo / spec.ensemble / str(labels.canary) / LABELS_FILE).read_text())
    cfg = ensemble_config(spec, info)
    cfg.name = spec.canary_ensemble
    cfg.parameters[RELEASE_PARAMETER].string_value = labels.to_json()
    atomic_write(root / "config.pbtxt", text_format.MessageToString(cfg))


def _reload(control: TritonControl | None, names: list[str], needed: set[str]) -> None:
    if control is None:
        return
    loaded = control.loaded()
    for name in names:
        if name in loaded or name in needed:
            control.load(name)


def _keep_stable_ready(control: TritonControl | None, spec: ModelSpec, stable: int) -> None:
    if control is None:
        return
    if not control.ready(spec.ensemble, stable):  # issue 4828: a composing reload can unload the ensemble
        control.load(spec.ensemble)
    wait_ready(control, spec.ensemble, stable)


def start_release(
    repo: Path,
    spec: ModelSpec,
    version: int,
    *,
    weight: float,
    shadow: float,
    control: TritonControl | None,
    log: Log = print,
) -> ReleaseLabels:
    """Serve ``version`` as the canary beside stable; both stay loaded.

    Raises:
        RepositoryError: no such version, it is stable already, or a release is running.
        ServerError: the canary did not load (stable keeps serving, the labels are unchanged).
    """
    require_version(repo, spec, version)
    require_no_release(repo, spec)
    before = current_labels(repo, spec)
    started = datetime.now(UTC).isoformat(timespec="milliseconds")
    labels = ReleaseLabels(before.stable, version, weight, shadow, uuid.uuid4().hex[:12], started)
    needed = {*pipeline_models(spec, read_version(repo, spec, before.stable)),
              *pipeline_models(spec, read_version(repo, spec, version))}  # fmt: skip
    write_labels(repo, spec.ensemble, labels)
    try:
        log(f"  loading {spec.name} v{version} beside v{before.stable} (composing models serve both)")
        _reload(control, write_composing_configs(repo, spec, sorted({before.stable, version})), needed)
        _write_canary_ensemble(repo, spec, labels)
        if control is not None:
            control.load(spec.canary_ensemble)
            wait_ready(control, spec.canary_ensemble, version)
        _keep_stable_ready(control, spec, before.stable)
    except ServerError as exc:
        _end(repo, spec, before.ended(before.stable), control, log, drain_s=0.0)
        reason = str(exc).splitlines()[0][:400]
        raise ServerError(
            f"{spec.name} v{version} failed to load as a canary: v{before.stable} keeps serving alone. Cause: {reason}"
        ) from None
    log(f"  {spec.canary_ensemble} serves v{version}: weight {weight:.0%}, shadow {shadow:.0%}")
    return labels


def _end(repo: Path, spec: ModelSpec, labels: ReleaseLabels, control: TritonControl | None, log: Log,
         *, drain_s: float) -> None:  # fmt: skip
    """Stop routing to the canary, remove its ensemble, keep only ``labels.stable`` loaded."""
    write_labels(repo, spec.ensemble, labels)
    canary_dir = repo / spec.canary_ensemble
    if control is not None and spec.canary_ensemble in control.loaded():
        time.sleep(drain_s)
        try:
            control.unload(spec.canary_ensemble)
        except ServerError as exc:  # unloaded already (issue 4828), or going: nothing to keep
            log(f"  note: {str(exc).splitlines()[0][:200]}")
    shutil.rmtree(canary_dir, ignore_errors=True)
    needed = set(pipeline_models(spec, read_version(repo, spec, labels.stable)))
    _reload(control, write_composing_configs(repo, spec, [labels.stable]), needed)
    _keep_stable_ready(control, spec, labels.stable)


def _active(repo: Path, spec: ModelSpec) -> ReleaseLabels:
    labels = read_labels(repo, spec.ensemble)
    if labels is None or not labels.active:
        raise RepositoryError(f"no release of {spec.name} is running (start one: `visionserve release start`)")
    return labels


def promote_release(
    repo: Path, spec: ModelSpec, control: TritonControl | None, log: Log = print, *, drain_s: float = DRAIN_S
) -> int:
    """Make the canary stable for every request; returns the new stable version."""
    labels = _active(repo, spec)
    canary = labels.canary
    assert canary is not None
    log(f"  promoting {spec.name} v{canary} (stable was v{labels.stable})")
    write_labels(repo, spec.ensemble, labels.ended(canary))
    try:
        switch_version(repo, spec, canary, control, log=log)  # composing serve both throughout, then the canary
    except ServerError:
        write_labels(repo, spec.ensemble, labels)  # still on trial: the stable ensemble kept its version
        raise
    _end(repo, spec, labels.ended(canary), control, log, drain_s=drain_s)
    return canary


def abort_release(
    repo: Path, spec: ModelSpec, control: TritonControl | None, log: Log = print, *, drain_s: float = DRAIN_S
) -> int:
    """Send every request to stable again and drop the canary; returns the stable version."""
    labels = _active(repo, spec)
    log(f"  aborting the release of {spec.name} v{labels.canary}: v{labels.stable} serves alone")
    if control is not None and spec.canary_ensemble in control.loaded():
        # the canary stays loaded but announces no traffic, so gateways stop routing before it goes
        drained = ReleaseLabels(labels.stable, labels.canary, 0.0, 0.0, labels.release_id, labels.started)
        _write_canary_ensemble(repo, spec, drained)
        control.load(spec.canary_ensemble)
    _end(repo, spec, labels.ended(labels.stable), control, log, drain_s=drain_s)
    return labels.stable
