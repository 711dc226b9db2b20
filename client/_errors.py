"""The client's errors, and the one place that maps tritonclient's failures onto them.

Error tree::

    VisionServeError                     (visionserve.errors)
    └── ClientError                      anything the client reports on purpose
        ├── ModelReloading               a reload swapped the model out under the request (retried)
        ├── ServerUnavailable            Triton cannot be reached: refused, timed out, name unknown
        │                                (also a visionserve.errors.ServerError)
        ├── ModelNotFound                the model, or that version of it, is not served
        ├── InferenceError               Triton rejected or failed an inference request
        │                                (e.g. an undecodable image); carries Triton's message
        ├── WrongAnswer                  a server answered, but not with a valid classification
        │                                for the request (load tests and benchmarks check every one)
        ├── ModelLoadError               the repository API could not load / unload a model
        ├── ImageFileError               an image file cannot be read
        └── InvalidRequest               the call is wrong before anything is sent (top_k < 1)

tritonclient raises ``InferenceServerException`` with a status (``StatusCode.NOT_FOUND`` over
gRPC, ``"404"`` over HTTP) for what the server answered, and plain ``OSError`` /
``TimeoutError`` / aiohttp errors for what the network did; ``to_client_error`` turns both
into the tree above so callers never see protocol-specific exceptions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

from tritonclient.utils import InferenceServerException

from visionserve.errors import ServerError, VisionServeError

__all__ = [
    "ClientError",
    "ImageFileError",
    "InferenceError",
    "InvalidRequest",
    "ModelLoadError",
    "ModelNotFound",
    "ModelReloading",
    "RepositoryRestricted",
    "ServerUnavailable",
    "WrongAnswer",
    "to_client_error",
]

#: Statuses that mean "nobody answered in time" (gRPC) or "try again later" (HTTP).
_UNAVAILABLE = frozenset({"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "503"})
_NOT_FOUND = frozenset({"StatusCode.NOT_FOUND", "404"})
_INVALID = frozenset({"StatusCode.INVALID_ARGUMENT", "400"})
#: Triton's wording for a model that is not served, whatever status it came with: the
#: statistics and repository APIs answer INVALID_ARGUMENT / INTERNAL for an unknown model.
_NOT_FOUND_MARKERS = (
    "unknown model",
    "is not available",
    "failed to poll from model repository",
)
_START_HINT = "is it running? Start it with `make serve` (or `visionserve serve`)"
#: Triton's answer to a model-repository call without the key ("This protocol is restricted…"
#: as gRPC UNAVAILABLE, "This API is restricted…" as HTTP 403).
_RESTRICTED_MARKERS = ("protocol is restricted", "api is restricted")


class ClientError(VisionServeError):
    """Base of every error the client raises on purpose.

    Args:
        message: the full explanation (what, where, what to do).
        detail: the most specific part alone (Triton's own message, the file problem), for
            places that already show the context, such as one row of the CLI's table.
    """

    error_code = 500
    code = "client"

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class ServerUnavailable(ClientError, ServerError):
    """Triton cannot be reached at the URL: not running, wrong address, or too slow to answer."""

    error_code = 503
    code = "server_unavailable"


class ModelReloading(ClientError):
    """The model version that took the request was being swapped out by a reload.

    Triton 2.51 binds a request to a model instance when it arrives; if a reload (a version
    switch, or a composing model's reload that re-creates the ensemble) unloads that instance
    before the request is queued, Triton answers UNAVAILABLE "version N is not at ready state".
    Inference is idempotent, so the clients retry it (``RELOAD_RETRIES``).
    """

    error_code = 503


class ModelNotFound(ClientError):
    """The model (or the requested version of it) is not served by this Triton."""

    error_code = 404
    code = "model_not_found"


class InferenceError(ClientError):
    """Triton rejected or failed an inference request; ``str()`` carries Triton's own message.

    Args:
        message: what went wrong, Triton's message included.
        status: the status tritonclient reported (``StatusCode.INVALID_ARGUMENT``, ``"400"``…).
    """

    error_code = 502
    code = "inference"

    def __init__(self, message: str, *, status: str | None = None, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.status = status
        # The caller's fault (bad image, batch too large) is a 400; anything else is the
        # upstream server failing, which a gateway reports as 502.
        self.error_code = 400 if status in _INVALID else 502


class WrongAnswer(ClientError):
    """A server answered, but not with a valid classification for the request (a fast wrong answer)."""

    error_code = 502
    code = "wrong_answer"


class RepositoryRestricted(ClientError):
    """Triton's model-repository API (index, load, unload) is restricted and no valid key was sent.

    Not ``ServerUnavailable``: over gRPC Triton says UNAVAILABLE, yet the server is up and
    answers everything else; what is missing is the key.
    """

    error_code = 403
    code = "repository_restricted"


class ModelLoadError(ClientError):
    """The repository API could not load or unload a model (bad config, failed backend…)."""

    error_code = 500
    code = "model_load"


class ImageFileError(ClientError):
    """An image file does not exist, is a directory, is empty or cannot be read."""

    error_code = 400
    code = "image_file"


class InvalidRequest(ClientError):
    """The call's arguments are invalid; nothing was sent."""

    error_code = 400
    code = "invalid_request"


def _describe_model(model: str, version: str) -> str:
    return f"model {model!r} version {version}" if version else f"model {model!r}"


def _status_text(status: str) -> str:
    return status.removeprefix("StatusCode.") if status.startswith("StatusCode.") else f"HTTP {status}"


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):  # refused, reset, DNS, TimeoutError (an OSError since 3.11)
        return True
    # aiohttp's disconnects are not all OSErrors; look only if something imported aiohttp.
    aiohttp = sys.modules.get("aiohttp")
    return aiohttp is not None and isinstance(exc, aiohttp.ClientConnectionError)


@dataclass(frozen=True)
class _Failed:
    """A failed call as its error message names it: where, about what, what Triton said."""

    url: str
    protocol: str
    timeout_s: float | None
    model: str
    version: str
    action: str
    status: str | None = None
    message: str = ""

    @property
    def where(self) -> str:
        return f"Triton at {self.url} ({self.protocol})"

    @property
    def subject(self) -> str:
        return _describe_model(self.model, self.version)

    @property
    def said(self) -> str:
        """Triton's message, lower case, for the wording rules."""
        return self.message.lower()

    def too_slow(self) -> ServerUnavailable:
        limit = f" within {self.timeout_s:g} s" if self.timeout_s else " in time"
        return ServerUnavailable(f"{self.where} did not answer{limit}: {_START_HINT}")


# -- what Triton answered: one rule per client error, tried in this order ----------------------
def _reloading(f: _Failed) -> ClientError | None:
    if "is not at ready state" not in f.said:
        return None
    return ModelReloading(f"{f.subject} on {f.where} is reloading: {f.message}", detail=f.message)


def _restricted(f: _Failed) -> ClientError | None:
    if not any(marker in f.said for marker in _RESTRICTED_MARKERS):
        return None
    return RepositoryRestricted(
        f"the model-repository API of {f.where} is restricted and this call carried no valid key "
        f"({f.message}): set VISIONSERVE_TRITON_REPOSITORY_KEY, or pass --repository-key-file "
        "(`make up` writes the key to .state/triton_repository_key)",
        detail=f.message,
    )


def _unavailable(f: _Failed) -> ClientError | None:
    if f.status not in _UNAVAILABLE:
        return None
    if f.status == "StatusCode.DEADLINE_EXCEEDED":
        return f.too_slow()
    return ServerUnavailable(f"cannot reach {f.where}: {f.message or f.status}; {_START_HINT}")


def _not_found(f: _Failed) -> ClientError | None:
    if not f.model or not (f.status in _NOT_FOUND or any(marker in f.said for marker in _NOT_FOUND_MARKERS)):
        return None
    return ModelNotFound(
        f"{f.subject} is not served by {f.where}: {f.message} (`visionserve models` lists what is served)"
    )


def _not_sent(f: _Failed) -> ClientError | None:
    """Tritonclient itself refused the call before sending anything (no status)."""
    return InvalidRequest(f.message) if f.status is None else None


def _load_failed(f: _Failed) -> ClientError | None:
    if f.action not in {"load", "unload"}:
        return None
    return ModelLoadError(f"cannot {f.action} {f.subject} on {f.where}: {f.message}", detail=f.message)


def _rejected(f: _Failed) -> ClientError:
    subject = f" for {f.subject}" if f.model else ""
    status = str(f.status)
    return InferenceError(
        f"{f.where} rejected the request{subject} ({_status_text(status)}): {f.message}",
        status=status,
        detail=f.message,
    )


_TRITON_RULES: tuple[Callable[[_Failed], ClientError | None], ...] = (
    _reloading,
    _restricted,
    _unavailable,
    _not_found,
    _not_sent,
    _load_failed,
)


def _network_error(f: _Failed, exc: BaseException) -> ServerUnavailable:
    if isinstance(exc, TimeoutError):
        return f.too_slow()
    return ServerUnavailable(f"cannot reach {f.where}: {str(exc) or type(exc).__name__}; {_START_HINT}")


def to_client_error(
    exc: BaseException,
    *,
    url: str,
    protocol: str,
    timeout_s: float | None = None,
    model: str = "",
    version: str = "",
    action: str = "",
) -> ClientError | None:
    """Translate a tritonclient / network exception into a ``ClientError``.

    What Triton answered (``InferenceServerException``) goes through ``_TRITON_RULES`` in
    order, first match wins (an unmatched answer is an ``InferenceError``); what the network
    did becomes ``ServerUnavailable``.

    Args:
        exc: what tritonclient raised.
        url: the server address, named in every message.
        protocol: ``"grpc"`` or ``"http"``.
        timeout_s: the per-call timeout, named when a call timed out.
        model: the model the call was about, if any.
        version: the requested version, ``""`` for the server's choice.
        action: what was being done (``"load"``, ``"unload"``…), for repository-API errors.

    Returns:
        The ClientError to raise (``from exc``), or None when ``exc`` is not something the
        client knows how to explain (then re-raise the original).
    """
    if isinstance(exc, ClientError):
        return exc
    failed = _Failed(url, protocol, timeout_s, model, version, action)
    if isinstance(exc, InferenceServerException):
        failed = replace(failed, status=exc.status(), message=exc.message() or str(exc))
        for rule in _TRITON_RULES:
            error = rule(failed)
            if error is not None:
                return error
        return _rejected(failed)
    if _is_network_error(exc):
        return _network_error(failed, exc)
    return None
