"""A small Telegram Bot API client on the standard library (`http.client`, `ssl`, `json`).

Why not python-telegram-bot or requests: see docs/decisions.md. In short, tradebot needs four
methods (getMe, getWebhookInfo, getUpdates, sendMessage) and one property no library gives: a
**total deadline** per request. A read timeout restarts with every byte, so a server (or a
middlebox) that drips one byte a second holds a request for ever; here every `recv` waits at most
what is left of the request's deadline, and the request fails with `NetworkError` when it is
spent.

The token travels only in the request path. No message of this module contains the URL or the
path: errors are described by their kind ("timed out", "connection refused", "HTTP 502").
"""

from __future__ import annotations

import errno
import http.client
import io
import json
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tradebot.config.remote import TELEGRAM_API, check_api_url
from tradebot.remote.token import Token

API_URL = TELEGRAM_API
__all__ = ["API_URL", "ApiError", "BotApi", "NetworkError", "TelegramError", "check_api_url"]
MAX_RESPONSE_BYTES = 4 << 20  # 100 updates of 4096 characters each fit several times
CONNECT_TIMEOUT_S = 10.0


class TelegramError(Exception):
    """A request did not succeed. `str()` never contains the token or the URL."""


class NetworkError(TelegramError):
    """No answer from the Bot API: unreachable, dropped, timed out, or not a Bot API answer."""


@dataclass
class ApiError(TelegramError):
    """The Bot API answered `ok: false`."""

    code: int
    description: str
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"Telegram answered {self.code}: {self.description}"

    @property
    def conflict(self) -> bool:
        return self.code == 409

    @property
    def unauthorized(self) -> bool:
        return self.code in (401, 404)  # 404: a token Telegram does not know at all


class BotApi:
    """The Bot API of one bot (one token)."""

    def __init__(
        self, token: Token, base_url: str = API_URL, *, connect_timeout: float = CONNECT_TIMEOUT_S
    ) -> None:
        parts = urlsplit(check_api_url(base_url))
        self.token = token
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._connect_timeout = connect_timeout
        self._context: ssl.SSLContext | None = None

    # -- the methods tradebot uses -----------------------------------------------------------

    def get_me(self, *, deadline_s: float = 15.0) -> dict[str, Any]:
        result = self.call("getMe", {}, deadline_s=deadline_s)
        if not isinstance(result, dict):
            raise NetworkError("getMe: not a Bot API answer")
        return result

    def get_webhook_info(self, *, deadline_s: float = 15.0) -> dict[str, Any]:
        result = self.call("getWebhookInfo", {}, deadline_s=deadline_s)
        if not isinstance(result, dict):
            raise NetworkError("getWebhookInfo: not a Bot API answer")
        return result

    def get_updates(
        self, offset: int | None, *, timeout_s: int, limit: int = 100, slack_s: float = 10.0
    ) -> list[dict[str, Any]]:
        """Long polling: Telegram holds the request up to `timeout_s` when there is nothing.
        The request's deadline is that plus `slack_s`."""
        params: dict[str, Any] = {"timeout": timeout_s, "limit": limit}
        if offset is not None:
            params["offset"] = offset
        result = self.call("getUpdates", params, deadline_s=timeout_s + slack_s)
        if not isinstance(result, list) or not all(isinstance(u, dict) for u in result):
            raise NetworkError("getUpdates: not a list of updates")
        return result

    def send_message(self, chat_id: int, text: str, *, deadline_s: float = 15.0) -> None:
        # Plain text (no parse_mode): operator and file text can never be taken as markup.
        self.call(
            "sendMessage",
            {"chat_id": chat_id, "text": text[:4096], "disable_web_page_preview": True},
            deadline_s=deadline_s,
        )

    # -- one request -------------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, Any], *, deadline_s: float) -> Any:
        """POST `params` as JSON to `method`; the `result` of an `ok` answer, else ApiError
        (Telegram said no) or NetworkError (no usable answer within `deadline_s`)."""
        deadline = time.monotonic() + deadline_s
        body = json.dumps(params).encode("utf-8")
        conn = self._connection(deadline)
        try:
            conn.request(
                "POST",
                f"{self._prefix}/bot{self.token.value}/{method}",
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "Connection": "close",
                    "User-Agent": "tradebot-remote",
                },
            )
            response = conn.getresponse()
            status = response.status
            data = response.read(MAX_RESPONSE_BYTES + 1)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise NetworkError(f"{method}: {describe_network_error(exc)}") from None
        finally:
            conn.close()
        if len(data) > MAX_RESPONSE_BYTES:
            raise NetworkError(f"{method}: the answer is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            answer = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            # A proxy's or a load balancer's page (502, 504), not Telegram's JSON.
            raise NetworkError(f"{method}: HTTP {status}, not a Bot API answer")
        if answer["ok"]:
            return answer.get("result")
        code = answer.get("error_code")
        parameters = answer.get("parameters")
        retry = parameters.get("retry_after") if isinstance(parameters, dict) else None
        description = str(answer.get("description") or "no description")[:300]
        raise ApiError(
            code if isinstance(code, int) else status,
            description.replace(self.token.value, self.token.masked()),
            float(retry) if isinstance(retry, (int, float)) and retry >= 0 else None,
        )

    def _connection(self, deadline: float) -> http.client.HTTPConnection:
        if self._https:
            if self._context is None:
                self._context = ssl.create_default_context()
            return _DeadlineHTTPSConnection(
                self._host, self._port, deadline, self._connect_timeout, self._context
            )
        return _DeadlineHTTPConnection(self._host, self._port, deadline, self._connect_timeout)


def describe_network_error(exc: BaseException) -> str:
    """A short description of a network failure, without any address or path."""
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or type(exc).__name__})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.RemoteDisconnected):  # a ConnectionResetError too
        return "connection closed without an answer"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "connection dropped"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed mid-answer"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP answer ({type(exc).__name__})"
    if isinstance(exc, socket.gaierror):
        return "name lookup failed (DNS)"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower().replace("_", " ")
    return type(exc).__name__


class _DeadlineSocket:
    """The socket as http.client uses it (sendall, makefile, close), each operation waiting at
    most what is left until the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        self._sock.settimeout(left)

    def sendall(self, data: bytes) -> None:
        self.arm()
        self._sock.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self))

    def recv_into(self, buffer: memoryview) -> int:
        self.arm()
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        self._sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(memoryview(buffer).cast("B"))


def _connect_timeout(deadline: float, connect_timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline")
    return min(left, connect_timeout)


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, deadline: float, connect_s: float) -> None:
        super().__init__(host, port, timeout=connect_s)
        self._deadline = deadline
        self._connect_s = connect_s

    def connect(self) -> None:
        self.timeout = _connect_timeout(self._deadline, self._connect_s)
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self._deadline)


class _DeadlineHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self,
        host: str,
        port: int | None,
        deadline: float,
        connect_s: float,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, timeout=connect_s, context=context)
        self._deadline = deadline
        self._connect_s = connect_s

    def connect(self) -> None:
        # The TCP connect and the TLS handshake, each bounded by the connect timeout and the
        # deadline; then every read and write by what is left of the deadline.
        self.timeout = _connect_timeout(self._deadline, self._connect_s)
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self._deadline)
