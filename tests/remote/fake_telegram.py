"""A local fake of the Telegram Bot API on loopback, for `tradebot remote`'s tests.

It speaks what tradebot uses, as Telegram documents it (https://core.telegram.org/bots/api):

* `getUpdates` long polling: `offset` confirms every update below it (they are never returned
  again), `timeout` holds the request until an update arrives or the time is up, `limit` caps
  the batch; updates carry `update_id` and a message `date` (Unix time);
* a newer `getUpdates` terminates a pending one with 409 "Conflict: terminated by other
  getUpdates request; make sure that only one bot instance is running" (freqtrade #4871), and
  a set webhook makes every `getUpdates` a 409 too;
* `sendMessage`, `getMe`, `getWebhookInfo`; a wrong token is 401 Unauthorized;
* faults on demand for the next requests: dropped connections (closed without an answer, or
  reset), a stalled server (never answers), a slowloris server (headers, then one byte at a
  time), a proxy's 502 page, 429 Too Many Requests with `retry_after`.

The request path holds the token, so the server never logs a request.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "7012345678:AAFakeTokenForTheTradebotSuite_x9QzLm3"
SECRET = TOKEN.split(":", 1)[1]  # what must never appear in any output
BOT_ID = 7012345678
USERNAME = "tradebot_test_bot"
TERMINATED = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
    "running"
)


@dataclass
class Fault:
    kind: str  # drop, reset, stall, slowloris, status, conflict
    status: int = 0
    body: bytes = b""
    interval: float = 0.05


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float


@dataclass
class FakeTelegram:
    token: str = TOKEN
    webhook: bool = False
    record_calls: bool = True  # off where the test measures its own process's memory
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    next_update_id: int = 500_000_001
    _generation: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closing: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- what the test does --------------------------------------------------------------------

    def message(
        self,
        user_id: int,
        text: str,
        *,
        chat_type: str = "private",
        chat_id: int | None = None,
        date: float | None = None,
        kind: str = "message",
    ) -> int:
        """A message from `user_id`, as Telegram would deliver it; its update_id."""
        chat = chat_id if chat_id is not None else (user_id if chat_type == "private" else -100)
        body: dict[str, Any] = {
            "message_id": len(self.updates) + 1,
            "date": int(time.time() if date is None else date),
            "chat": {"id": chat, "type": chat_type},
            "text": text,
        }
        if kind != "channel_post":
            body["from"] = {"id": user_id, "is_bot": False, "first_name": "Op"}
        return self._add({kind: body})

    def channel_post(self, text: str, *, date: float | None = None) -> int:
        return self.message(0, text, chat_type="channel", chat_id=-1001, date=date,
                            kind="channel_post")  # fmt: skip

    def raw_update(self, payload: dict[str, Any]) -> int:
        return self._add(payload)

    def _add(self, payload: dict[str, Any]) -> int:
        with self._cond:
            update_id = self.next_update_id
            self.next_update_id += 1
            self.updates.append({"update_id": update_id, **payload})
            self._cond.notify_all()
            return update_id

    def fail_next(self, kind: str, count: int = 1, **kw: Any) -> None:
        with self._cond:
            self.faults.extend(Fault(kind, **kw) for _ in range(count))

    def wait_sent(
        self, what: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._cond:
                for m in self.sent:
                    if what(m):
                        return m
            time.sleep(0.01)
        raise AssertionError(f"no such message was sent; sent: {self.texts()}")

    def texts(self, chat_id: int | None = None) -> list[str]:
        with self._cond:
            return [m["text"] for m in self.sent if chat_id is None or m["chat_id"] == chat_id]

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def pending(self) -> list[int]:
        with self._cond:
            return [u["update_id"] for u in self.updates]

    # -- the API -------------------------------------------------------------------------------

    def api(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "getMe":
            return 200, ok({"id": BOT_ID, "is_bot": True, "first_name": "tb", "username": USERNAME})
        if method == "getWebhookInfo":
            return 200, ok({"url": "https://example.invalid/hook" if self.webhook else "",
                            "pending_update_count": len(self.updates)})  # fmt: skip
        if method == "sendMessage":
            chat_id, text = params.get("chat_id"), params.get("text")
            if not isinstance(chat_id, int) or not isinstance(text, str) or not text:
                return 400, error(400, "Bad Request: message text is empty")
            with self._cond:
                self.sent.append({"chat_id": chat_id, "text": text, "at": time.time()})
                n = len(self.sent)
            return 200, ok({"message_id": n, "date": int(time.time()), "text": text,
                            "chat": {"id": chat_id, "type": "private"}})  # fmt: skip
        if method == "getUpdates":
            return self._get_updates(params)
        return 404, error(404, "Not Found: method not found")

    def _get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.webhook:
            return 409, error(
                409, "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first")  # fmt: skip
        offset = params.get("offset")
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self._cond:
            self._generation += 1
            mine = self._generation
            if isinstance(offset, int):  # confirmed: gone for good
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while True:
                if self._generation != mine:
                    return 409, error(409, TERMINATED)
                if self.updates or self._closing.is_set():
                    return 200, ok(self.updates[:limit])
                left = deadline - time.monotonic()
                if left <= 0:
                    return 200, ok([])
                self._cond.wait(min(left, 0.05))

    def take_fault(self) -> Fault | None:
        with self._cond:
            return self.faults.pop(0) if self.faults else None


# Larger files are the hostile inputs other tests build on purpose (2 GiB sparse CSVs, a
# 100 MB journal), not anything the remote wrote: reading them took 18 s of every suite run.
SCAN_LIMIT = 64 * 1024 * 1024


def scan_for_token(root: Path) -> list[Path]:
    """Every file under `root` that contains the token's secret part (the secret files the
    tests write on purpose, named telegram_token*, excepted; files over SCAN_LIMIT skipped)."""
    leaks = []
    for path in root.rglob("*"):
        if path.name.startswith("telegram_token") or path.is_symlink() or not path.is_file():
            continue
        try:
            if path.stat().st_size > SCAN_LIMIT:
                continue
            if SECRET.encode() in path.read_bytes():
                leaks.append(path)
        except OSError:
            continue
    return leaks


def ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def error(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        answer["parameters"] = parameters
    return answer


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeTelegram
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Never log: the request path holds the token."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        fake = self.server_fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        params: dict[str, Any] = {}
        if raw:
            with contextlib.suppress(ValueError):
                params = json.loads(raw)
        params.update({k: _scalar(v[-1]) for k, v in parse_qs(parts.query).items()})
        segments = parts.path.strip("/").split("/")
        method = segments[-1] if segments else ""
        fault = fake.take_fault()
        if fake.record_calls:
            fake.calls.append(Call(method, params, time.monotonic()))
        if fault is not None and self._fault(fault):
            return
        if len(segments) != 2 or segments[0] != f"bot{fake.token}":
            self._answer(401, error(401, "Unauthorized"))
            return
        status, body = fake.api(method, params)
        self._answer(status, body)

    def _fault(self, fault: Fault) -> bool:
        """True when the fault replaced the answer."""
        fake = self.server_fake
        if fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return True
        if fault.kind == "stall":
            fake._closing.wait(30)
            self.close_connection = True
            return True
        if fault.kind == "slowloris":
            # Headers promptly, then the body one byte at a time, for ever.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.flush()
            with contextlib.suppress(OSError):
                while not fake._closing.wait(fault.interval):
                    self.wfile.write(b" ")
                    self.wfile.flush()
            self.close_connection = True
            return True
        if fault.kind == "status":
            body = fault.body or b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self.send_response(fault.status or 502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return True
        if fault.kind == "conflict":
            self._answer(409, error(409, TERMINATED))
            return True
        if fault.kind == "429":
            self._answer(429, error(429, "Too Many Requests: retry after 3", retry_after=3))
            return True
        raise AssertionError(f"unknown fault {fault.kind}")

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client went away (a terminated or abandoned long poll)


def _scalar(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        return value
