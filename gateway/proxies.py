"""The caller's address behind trusted reverse proxies (``GATEWAY_TRUSTED_PROXIES``).

Rate limits for callers without a valid key are kept per client address. Behind an ingress
the TCP peer is the ingress itself, so without this every anonymous caller would share one
bucket (and one caller could spend everyone's). ``X-Forwarded-For`` is believed only when the
peer is a trusted proxy; the header is then read from the right, skipping trusted hops, and
the first address that is not a trusted proxy is the client (what each proxy appended, not
what the caller wrote at the left end). With no trusted proxies (the default) the header is
ignored: a caller cannot pick its own bucket by sending one.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

__all__ = ["client_address", "parse_networks"]

Network = IPv4Network | IPv6Network
#: More hops than any real proxy chain: a longer header is read no further (its cost is bounded).
_MAX_HOPS = 16


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128).

    Raises:
        ValueError: an entry that is not an address or network.
    """
    networks = []
    for item in text.split(","):
        item = item.strip()
        if item:
            networks.append(ip_network(item, strict=False))
    return tuple(networks)


def _address(text: str) -> IPv4Address | IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ip_address(text)
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in net for net in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The address a request's limits are kept under.

    Args:
        peer: the TCP peer's address (``request.client.host``), None when unknown.
        forwarded_for: the ``X-Forwarded-For`` header, if any.
        trusted: networks of the proxies whose header is believed.

    Returns:
        The first untrusted address from the right of ``X-Forwarded-For`` when the peer is
        trusted, else the peer ("unknown" without one).
    """
    peer_address = _address(peer) if peer else None
    if not forwarded_for or not trusted or not _trusted(peer_address, trusted):
        return peer or "unknown"
    hops = forwarded_for.rsplit(",", _MAX_HOPS)[-_MAX_HOPS:]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage: stop at the last hop we could read
        if not _trusted(address, trusted):
            return str(address)
    return str(peer_address) if peer_address is not None else (peer or "unknown")
