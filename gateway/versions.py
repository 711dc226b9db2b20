"""Which version of each catalog ensemble Triton serves right now, learned by polling.

How the gateway learns of a new version: every ``version_poll_interval_s`` (default 0.25 s,
at most 0.5 s) every worker asks Triton, for each catalog ensemble, its configuration (the
versions it pins: a published ensemble pins exactly the version it serves) and whether each
pinned version is ready (``model_config`` + ``is_ready``, over the worker's one channel,
the models concurrently). Neither call is in Triton's ``model-repository`` API group (index,
load, unload; its docs' "Limit Endpoint Access" list), so the gateway needs no key when that
group is restricted (``visionserve up`` restricts it). The *served version* of an ensemble is
its highest ready pinned version — what Triton runs for a request that names no version. The
cache key includes it, so within one poll interval (+ the calls' round trip) of a new version
becoming ready, lookups move to new keys and no older answer is served: well inside the 1 s
bound. A Triton answer that reports a newer version than the tracker knows moves the tracker
forward at once and triggers a poll.

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

from client import ClientError, ServerUnavailable, weights_of
from gateway.background import LoopTask
from gateway.release_state import CanaryState, poll_release
from visionserve.catalog import Catalog
from visionserve.release import ReleaseLabels

__all__ = ["NOT_READY_REASONS", "ModelState", "VersionTracker", "pinned_versions"]

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


class _Client(Protocol):
    async def model_config(self, model: str) -> dict[str, Any]: ...

    async def is_ready(self, model: str | None = None, version: str | int = "") -> bool: ...


@dataclass(frozen=True)
class ModelState:
    """One catalog ensemble as Triton reports it."""

    name: str
    ready: bool
    versions: tuple[int, ...]
    served: int | None
    weights: str | None
    reason: str = ""
    #: the release running (its canary ensemble is ready), else None: ``gateway.release_state``
    release: ReleaseLabels | None = None


def pinned_versions(config: dict[str, Any]) -> tuple[int, ...]:
    """The versions a model config's ``version_policy.specific`` names (int64s come as strings)."""
    body = config.get("config", config)
    specific = (body.get("version_policy") or {}).get("specific") or {}
    versions = []
    for version in specific.get("versions") or ():
        try:
            versions.append(int(str(version)))
        except ValueError:
            continue
    return tuple(sorted(set(versions)))


class VersionTracker:
    """Polls Triton for the served version and readiness of every catalog ensemble.

    Args:
        client: the gateway's Triton client (``model_config()``, ``is_ready()``).
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
        self._names = [spec.ensemble for spec in catalog.served.values()]
        self._canaries = {spec.ensemble: spec.canary_ensemble for spec in catalog.served.values()}
        self._interval_s = interval_s
        self._on_change = on_change
        self._states: dict[str, ModelState] = {
            n: ModelState(n, False, (), None, None, "not_polled") for n in self._names
        }
        self._weights: dict[tuple[str, int], str | None] = {}
        self._last_served: dict[str, int] = {}
        self._raw_reasons: dict[str, str] = {}
        self._task = LoopTask("version-tracker")
        self._poke = asyncio.Event()
        self.reachable = False
        self.last_poll_s: float | None = None

    # -- queries (cheap, no I/O) ------------------------------------------------------
    def state(self, model: str) -> ModelState:
        return self._states[model]

    def served_version(self, model: str) -> int | None:
        """The version answers are keyed on: the served one, or the last served while none is ready.

        While Triton is down, shutting down, or reloading, no version is ready; the last one
        served is still the version a cached answer belongs to, so cache hits keep flowing
        (a miss then fails on Triton as it should). A newly ready version replaces it at once.
        """
        return self._states[model].served or self._last_served.get(model)

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
        if new.served is not None:
            self._last_served[model] = new.served
        if old.served != new.served:
            log.info("%s: served version %s -> %s", model, old.served, new.served)
            if self._on_change is not None:
                self._on_change(model, old.served, new.served)

    async def refresh(self) -> bool:
        """Poll once; False (state kept, marked unreachable) when Triton did not answer."""
        try:
            polled = await asyncio.gather(*(self._poll(name) for name in self._names))
        except Exception as exc:  # ServerUnavailable and anything else: keep serving what we know
            if self.reachable or self.last_poll_s is None:
                log.warning("Triton unreachable: %s", exc)
            self.reachable = False
            for name, state in self._states.items():
                if not state.ready:
                    self._states[name] = ModelState(name, False, (), None, None, "triton_unreachable")
            return False
        for name, (versions, weights, reason, release) in zip(self._names, polled, strict=True):
            served = versions[-1] if versions else None
            if served is not None:
                self._weights[(name, served)] = weights
            labels = None
            if release is not None:
                labels, canary_weights = release
                self._weights[(name, labels.canary)] = canary_weights  # type: ignore[index]
            state = ModelState(name, bool(versions), versions, served, self.weights(name, served), reason, labels)
            self._set(name, state)
        self.reachable = True
        self.last_poll_s = time.monotonic()
        return True

    async def _poll(self, name: str) -> tuple[tuple[int, ...], str | None, str, CanaryState | None]:
        """(ready pinned versions, weights flag, not-ready reason, release) of one ensemble.

        Raises:
            ServerUnavailable: Triton did not answer (the whole poll counts as unreachable).
        """
        release_poll = asyncio.ensure_future(poll_release(self._client, self._canaries[name]))
        try:
            config = await self._client.model_config(name)
        except ServerUnavailable:
            release_poll.cancel()
            raise
        except ClientError as exc:  # not loaded (or not loadable): Triton's text goes to the log only
            if self._raw_reasons.get(name) != str(exc):
                log.warning("%s not ready: %s", name, exc)
            self._raw_reasons[name] = str(exc)
            return (), None, "not_loaded", await release_poll
        self._raw_reasons.pop(name, None)
        pinned = pinned_versions(config)
        ready = await asyncio.gather(*(self._client.is_ready(name, v) for v in pinned))
        versions = tuple(v for v, ok in zip(pinned, ready, strict=True) if ok)
        return versions, weights_of(config) or None, "" if versions else "loading", await release_poll

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._task.start(self._run)

    async def _run(self) -> None:
        while True:
            await self.refresh()
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self._interval_s)

    async def close(self) -> None:
        await self._task.cancel()
