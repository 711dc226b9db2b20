"""Which version of each catalog ensemble Triton serves right now, learned by polling.

How the gateway learns of a new version: every worker asks Triton's repository index
(one gRPC call over the worker's one channel, ``client.models()``) every
``version_poll_interval_s`` (default 0.25 s, at most 0.5 s). The *served version* of an
ensemble is its highest READY version — what Triton runs for a request that names no version.
The cache key includes it, so within one poll interval (+ the call's round trip) of a new
version becoming ready, lookups move to new keys and no older answer is served: well inside
the 1 s bound. A Triton answer that reports a newer version than the tracker knows moves the
tracker forward at once and triggers a poll.

The same poll feeds readiness (``/readyz``, ``/v1/models``) and ``model=auto`` (only ready
models are candidates). When Triton cannot be reached the last known state is kept (so cached
answers still flow) but marked unreachable.

Why a model is not ready is reported to callers as one of ``NOT_READY_REASONS`` (stable
words), never Triton's own text: that carries file paths, backend errors and stack details of
the server. The text is logged when it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from visionserve.catalog import Catalog

__all__ = ["NOT_READY_REASONS", "ModelState", "VersionTracker", "not_ready_reason", "weights_flag"]

log = logging.getLogger("visionserve.gateway.versions")

#: What ``ModelState.reason`` (and ``/v1/models``) may say; "" when ready.
NOT_READY_REASONS = (
    "not_polled",
    "triton_unreachable",
    "not_loaded",
    "loading",
    "unloading",
    "unloaded",
    "load_failed",
)


def not_ready_reason(state: str, reason: str) -> str:
    """A stable word for a repository-index row that is not READY (Triton's state and text)."""
    state = state.upper()
    if state == "LOADING":
        return "loading"
    if state == "UNLOADING":
        return "unloading"
    text = reason.strip().lower()
    if text in ("", "not loaded"):
        return "not_loaded"
    if text == "unloaded":
        return "unloaded"
    return "load_failed"


class _Client(Protocol):
    async def models(self) -> list[Any]: ...

    async def model_config(self, model: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ModelState:
    """One catalog ensemble as Triton reports it."""

    name: str
    ready: bool
    versions: tuple[int, ...]
    served: int | None
    weights: str | None
    reason: str = ""


def weights_flag(config: dict[str, Any]) -> str | None:
    """The ``weights`` parameter of a Triton model config (``"demo"`` for demo weights)."""
    body = config.get("config", config)
    params = body.get("parameters") or {}
    value = params.get("weights")
    if isinstance(value, dict):
        value = value.get("string_value")
    return str(value) if value else None


def _as_int(version: object) -> int | None:
    try:
        return int(str(version))
    except ValueError:
        return None


class VersionTracker:
    """Polls Triton for the served version and readiness of every catalog ensemble.

    Args:
        client: the gateway's Triton client (``models()``, ``model_config()``).
        catalog: which ensembles to track.
        interval_s: time between polls.
        on_change: called with (model, old, new) when a served version changes.
    """

    def __init__(
        self,
        client: _Client,
        catalog: Catalog,
        *,
        interval_s: float = 0.25,
        on_change: Callable[[str, int | None, int | None], None] | None = None,
    ) -> None:
        self._client = client
        self._names = [spec.ensemble for spec in catalog.models.values()]
        self._interval_s = interval_s
        self._on_change = on_change
        self._states: dict[str, ModelState] = {
            n: ModelState(n, False, (), None, None, "not_polled") for n in self._names
        }
        self._weights: dict[tuple[str, int], str | None] = {}
        self._raw_reasons: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self.reachable = False
        self.last_poll_s: float | None = None

    # -- queries (cheap, no I/O) ------------------------------------------------------
    def state(self, model: str) -> ModelState:
        return self._states[model]

    def states(self) -> list[ModelState]:
        return [self._states[n] for n in self._names]

    def served_version(self, model: str) -> int | None:
        return self._states[model].served

    def ready_models(self) -> list[str]:
        return [n for n in self._names if self._states[n].ready]

    def weights(self, model: str, version: int | None) -> str | None:
        if version is None:
            return None
        return self._weights.get((model, version))

    # -- updates -----------------------------------------------------------------------
    def note_answer(self, model: str, version: int) -> None:
        """Triton answered with ``version``: if newer than known, adopt it and poll now."""
        state = self._states.get(model)
        if state is None or (state.served is not None and version <= state.served):
            return
        versions = tuple(sorted({*state.versions, version}))
        self._set(model, ModelState(model, True, versions, version, self._weights.get((model, version))))
        self._poke.set()

    def _set(self, model: str, new: ModelState) -> None:
        old = self._states[model]
        self._states[model] = new
        if old.served != new.served:
            log.info("%s: served version %s -> %s", model, old.served, new.served)
            if self._on_change is not None:
                self._on_change(model, old.served, new.served)

    async def refresh(self) -> bool:
        """Poll once; False (state kept, marked unreachable) when Triton did not answer."""
        try:
            rows = await self._client.models()
        except Exception as exc:  # ServerUnavailable and anything else: keep serving what we know
            if self.reachable or self.last_poll_s is None:
                log.warning("Triton unreachable: %s", exc)
            self.reachable = False
            for name, state in self._states.items():
                if not state.ready:
                    self._states[name] = ModelState(name, False, (), None, None, "triton_unreachable")
            return False
        ready: dict[str, set[int]] = {n: set() for n in self._names}
        reasons: dict[str, str] = {}
        for row in rows:
            if row.name not in ready:
                continue
            version = _as_int(row.version)
            if row.ready and version is not None:
                ready[row.name].add(version)
            else:
                reasons[row.name] = not_ready_reason(str(getattr(row, "state", "")), str(row.reason or ""))
                if row.reason and self._raw_reasons.get(row.name) != row.reason:
                    log.warning("%s version %s not ready: %s", row.name, row.version, row.reason)
                self._raw_reasons[row.name] = str(row.reason or "")
        for name in self._names:
            versions = tuple(sorted(ready[name]))
            served = versions[-1] if versions else None
            if served is not None and (name, served) not in self._weights:
                await self._load_weights(name, served)
            reason = "" if versions else reasons.get(name, "not_loaded")
            self._set(name, ModelState(name, bool(versions), versions, served, self.weights(name, served), reason))
        self.reachable = True
        self.last_poll_s = time.monotonic()
        return True

    async def _load_weights(self, name: str, version: int) -> None:
        try:
            self._weights[(name, version)] = weights_flag(await self._client.model_config(name))
        except Exception as exc:  # the flag is informative; never block the version switch on it
            log.warning("cannot read the config of %s: %s", name, exc)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="version-tracker")

    async def _run(self) -> None:
        while True:
            await self.refresh()
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self._interval_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
