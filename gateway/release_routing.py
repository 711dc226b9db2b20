"""Which pipeline answers a request while a release runs, and why.

* No release (or its canary equals stable, as right after a promote): the stable ensemble,
  route None (the row says nothing: one version serves).
* A pin: ``label=stable|canary`` or ``version=N`` (N the stable or the canary version) picks
  that pipeline, route ``pin``; a pin to a version that is not served is a 404.
* Otherwise the API key decides, sticky for the whole release: with Redis by a stored,
  balanced assignment (``gateway.release_assign``), else ``bucket(key id, release id)`` maps
  the pair to [0, 1) with SHA-256 and a bucket below the canary's weight goes to the canary
  (route ``weight``), the rest to stable (route ``stable``). A new release id re-deals the
  keys, so the same customers are not always first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from gateway.errors import NotFound
from gateway.versions import ModelState
from visionserve.catalog import ModelSpec
from visionserve.release import ReleaseLabels

__all__ = ["Label", "Pin", "Route", "bucket", "choose_route", "running_release"]

Label = Literal["stable", "canary"]
_TWO_64 = float(2**64)


@dataclass(frozen=True)
class Pin:
    """A client's choice of pipeline: a label or a version number (not both)."""

    label: Label | None = None
    version: int | None = None


@dataclass(frozen=True)
class Route:
    """The ensemble to ask, the version it serves (the cache key's), and the reason.

    Args:
        ensemble: the Triton model to call (the stable or the canary ensemble).
        version: the version that ensemble serves, None while none is known.
        reason: ``stable``, ``weight`` or ``pin`` during a release, else None.
        canary: True when the canary pipeline answers.
        release: the release running, if any (what shadowing needs).
    """

    ensemble: str
    version: int | None
    reason: str | None
    canary: bool = False
    release: ReleaseLabels | None = None


def bucket(key_id: str, release_id: str) -> float:
    """A stable, uniform position in [0, 1) of one API key in one release."""
    digest = hashlib.sha256(f"{release_id}\x00{key_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _TWO_64


def _running(state: ModelState) -> ReleaseLabels | None:
    release = state.release
    if release is None or release.canary is None or release.canary == state.served:
        return None
    return release


def running_release(state: ModelState) -> ReleaseLabels | None:
    """The release that routes traffic now: its canary is ready and differs from stable."""
    return _running(state)


def choose_route(
    spec: ModelSpec,
    state: ModelState,
    served: int | None,
    key_id: str,
    pin: Pin | None,
    in_canary: bool | None = None,
) -> Route:
    """The route of one request of ``key_id`` to ``spec`` given Triton's state.

    Args:
        spec: the catalog entry.
        state: what the tracker knows of its ensemble (served version, release).
        served: the stable version answers are keyed on (``VersionTracker.served_version``).
        key_id: the caller's API key id.
        pin: the client's pin, if any.
        in_canary: the key's assignment (``gateway.release_assign``); None: by ``bucket``.

    Raises:
        NotFound: a pin to a label or version that is not served (404).
    """
    release = _running(state)
    stable = Route(spec.ensemble, served, "stable" if release else None, release=release)
    canary = Route(spec.canary_ensemble, release.canary, "weight", canary=True, release=release) if release else None
    if pin is not None and (pin.label is not None or pin.version is not None):
        wanted_canary = pin.label == "canary" or (pin.version is not None and pin.version != served)
        if not wanted_canary:
            if pin.version is not None and served is None:
                raise NotFound(f"version {pin.version} of {spec.name} is not served", code="version_not_served")
            return Route(spec.ensemble, served, "pin", release=release)
        if canary is None or (pin.version is not None and pin.version != canary.version):
            what = "no canary" if pin.label == "canary" else f"version {pin.version}"
            served_text = f"stable v{served}" + (f", canary v{canary.version}" if canary else "")
            raise NotFound(f"{what} of {spec.name} is not served ({served_text})", code="version_not_served")
        return Route(canary.ensemble, canary.version, "pin", canary=True, release=release)
    if release is not None and canary is not None:
        chosen = bucket(key_id, release.release_id) < release.weight if in_canary is None else in_canary
        if chosen:
            return canary
    return stable
