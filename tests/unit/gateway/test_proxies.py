"""The client address behind trusted proxies: X-Forwarded-For only from a trusted peer."""

from __future__ import annotations

import pytest

from gateway.proxies import client_address, parse_networks

INGRESS = parse_networks("10.0.0.0/8, 192.168.1.7")


@pytest.mark.parametrize(
    "peer,forwarded,expected",
    [
        ("203.0.113.9", None, "203.0.113.9"),  # no proxy: the peer
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # an untrusted peer cannot choose its bucket
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),  # the ingress says who called
        ("10.1.2.3", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the caller's own left entry is ignored
        ("10.1.2.3", "198.51.100.1, 10.9.9.9", "198.51.100.1"),  # trusted hops are skipped
        ("192.168.1.7", "2001:db8::1", "2001:db8::1"),
        ("10.1.2.3", "garbage", "10.1.2.3"),  # unreadable: the proxy itself, never the text
        ("10.1.2.3", "10.4.4.4", "10.1.2.3"),  # only trusted hops: the peer
        (None, "198.51.100.1", "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, INGRESS) == expected


def test_nothing_trusted_by_default_and_typos_refused() -> None:
    """Finding: behind an ingress every caller shared one anonymous bucket (the ingress's)."""
    assert client_address("10.1.2.3", "198.51.100.1", parse_networks("")) == "10.1.2.3"
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/33")
    from gateway.settings import GatewaySettings

    with pytest.raises(ValueError):
        GatewaySettings(trusted_proxies="not-a-cidr")
    assert GatewaySettings(trusted_proxies="10.0.0.0/8").trusted_networks == parse_networks("10.0.0.0/8")
