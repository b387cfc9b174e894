"""`core.network.is_loopback`: the one answer to "is this host this machine?" behind the
remote's plain-http rule and the gateway simulator's bind rule."""

from __future__ import annotations

import pytest

from tradebot.core.network import is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),  # all of 127.0.0.0/8
        ("::1", True),
        ("0.0.0.0", False),  # every interface: reachable from the network
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("localhost.example.com", False),  # a name could resolve anywhere
        ("", False),
    ],
)
def test_only_this_machine_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_remote_and_the_gateway_simulator_ask_the_same_function() -> None:
    from tradebot.config import remote
    from tradebot.gateway_sim import server

    assert remote.is_loopback is is_loopback
    assert server.is_loopback is is_loopback
