"""Whether a host is this machine: the one test behind "plain http:// only to this machine"
(the remote's Telegram API URL) and "the gateway simulator binds 127.0.0.1 only"."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """`localhost`, or a loopback address (127.0.0.0/8, ::1); any other name is not (it could
    resolve anywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
