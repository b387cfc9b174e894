"""sd_notify written directly (no systemd Python package): one datagram per message to the socket
named by `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). Without `NOTIFY_SOCKET`
(tmux, a terminal, tests) every call does nothing.

Messages tradebot sends: `READY=1` after the start-up reconciliation, `WATCHDOG=1` from the loop
itself while it makes progress, `STATUS=<one line>`, `STOPPING=1` on shutdown.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if raw.startswith("@"):
            self.address = b"\0" + raw[1:].encode()  # abstract namespace
        elif raw.startswith("/"):
            self.address = raw
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_s: float | None = int(usec) / 1_000_000 if usec.isdigit() else None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send `lines` as one datagram; False (logged once) when it cannot be delivered."""
        if self.address is None:
            return False
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                # Never wait: a receiver whose queue is full (systemd busy, a test not reading)
                # must not stall the trading loop; the ping is dropped and logged instead.
                sock.sendall(payload, socket.MSG_DONTWAIT)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd (%s): %s", os.environ.get("NOTIFY_SOCKET"), exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def watchdog(self, status: str | None = None) -> bool:
        lines = ["WATCHDOG=1"] + ([f"STATUS={status}"] if status else [])
        return self.send(*lines)

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")
