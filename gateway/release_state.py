"""What release runs for a model, as Triton's canary ensemble announces it.

The gateway never reads the model repository (in Kubernetes it has no volume of it): the
canary ensemble's ``release`` config parameter carries the labels file's fields
(``visionserve.release``). A release counts only while that ensemble's pinned version is
ready, so a canary that is loading, unloaded or failing gets no traffic.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from client import ClientError, ServerUnavailable, weights_of
from visionserve.errors import RepositoryError
from visionserve.release import RELEASE_PARAMETER, ReleaseLabels

__all__ = ["CanaryState", "poll_release", "release_parameter"]

log = logging.getLogger("visionserve.gateway.release")

#: (labels, the canary version's ``weights`` parameter), or None: no release.
CanaryState = tuple[ReleaseLabels, str | None]


class _Client(Protocol):
    async def model_config(self, model: str) -> dict[str, Any]: ...

    async def is_ready(self, model: str | None = None, version: str | int = "") -> bool: ...


def release_parameter(config: dict[str, Any]) -> str | None:
    """The ``release`` parameter's text in a model config (HTTP and gRPC JSON shapes)."""
    body = config.get("config", config)
    param = (body.get("parameters") or {}).get(RELEASE_PARAMETER) or {}
    value = param.get("string_value", param.get("stringValue"))
    return str(value) if value else None


async def poll_release(client: _Client, canary_ensemble: str) -> CanaryState | None:
    """The release announced by ``canary_ensemble``, or None (not loaded, not ready, no labels).

    Raises:
        ServerUnavailable: Triton did not answer.
    """
    try:
        config = await client.model_config(canary_ensemble)
    except ServerUnavailable:
        raise
    except ClientError:
        return None  # no canary loaded: the usual case
    text = release_parameter(config)
    if text is None:
        return None
    try:
        labels = ReleaseLabels.from_json(text)
    except RepositoryError as exc:
        log.warning("%s: ignoring its release parameter: %s", canary_ensemble, exc)
        return None
    if labels.canary is None or not await client.is_ready(canary_ensemble, labels.canary):
        return None
    return labels, weights_of(config) or None
