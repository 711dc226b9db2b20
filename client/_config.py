"""Named defaults of the client: where Triton listens, how long to wait, which protocol.

The ports come from ``visionserve.settings`` so that the launcher, the chart and the client
agree on them without repeating numbers.
"""

from __future__ import annotations

from typing import Literal, get_args

from visionserve.settings import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT

__all__ = [
    "DEFAULT_GRPC_URL",
    "DEFAULT_HTTP_URL",
    "DEFAULT_PROTOCOL",
    "DEFAULT_TIMEOUT_S",
    "PROTOCOLS",
    "Protocol",
    "default_url",
    "normalize_url",
]

Protocol = Literal["grpc", "http"]
#: The protocols the client speaks (KServe v2 over gRPC and over HTTP/REST).
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
#: gRPC: one HTTP/2 channel multiplexes every request, so it is the default.
DEFAULT_PROTOCOL: Protocol = "grpc"
DEFAULT_GRPC_URL = f"127.0.0.1:{DEFAULT_GRPC_PORT}"
DEFAULT_HTTP_URL = f"127.0.0.1:{DEFAULT_HTTP_PORT}"
#: Per call. Generous because a cold model (first request, CPU, large batch) can take seconds.
DEFAULT_TIMEOUT_S = 30.0
#: Classes a classification returns when the caller does not say (the catalog's default; the
#: client stands alone, so it names the number once here).
DEFAULT_TOP_K = 5

#: Schemes users type out of habit; tritonclient wants bare ``host:port[/path]``.
_SCHEMES = ("http://", "grpc://")


def default_url(protocol: Protocol) -> str:
    """The local Triton address for ``protocol`` (what ``make serve`` listens on)."""
    return DEFAULT_GRPC_URL if protocol == "grpc" else DEFAULT_HTTP_URL


def normalize_url(url: str) -> str:
    """``url`` as tritonclient expects it: no ``http://`` / ``grpc://`` scheme, no trailing slash.

    Raises:
        ValueError: another scheme (``https://``…): this client speaks plain text only, and
            silently dropping the scheme would send plain text to a TLS endpoint.
    """
    url = url.strip()
    for scheme in _SCHEMES:
        if url.lower().startswith(scheme):
            url = url[len(scheme) :]
    if "://" in url:
        raise ValueError(f"unsupported URL scheme in {url!r}: give host:port (plain-text HTTP or gRPC)")
    return url.rstrip("/")


#: Attempts after the first when Triton answers "not at ready state" during a model reload.
RELOAD_RETRIES = 3
#: Pause before each such retry (doubled every attempt).
RELOAD_RETRY_DELAY_S = 0.05
