"""The TWS socket protocol's framing, in our own words.

* The client opens with the 4 bytes ``API\\0`` and then one framed message ``v<min>..<max>``
  (optionally followed by a space and connect options such as ``+PACEAPI``).
* Every message after that, in both directions, is a frame: a 4-byte big-endian length, then
  the payload, which is text fields each terminated by a NUL byte. The first field is the
  message id.
* The server's first frame has exactly two fields: the negotiated server version and the
  connection time. The client tells it apart from everything else by that field count.

Values are written the way ib_async writes them (`field_text`): None → empty, bools → 1/0,
numbers in plain decimal notation. Reading goes through `Fields`, a cursor that names what it
expected when a request is shorter than its layout.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

HELLO = b"API\0"
# Bounds on what one connection may make the simulator hold: a frame is far above any real
# request (ib_async's largest, placeOrder, is ~2 KB), and must arrive whole in FRAME_TIMEOUT
# once begun; a client says hello within HELLO_TIMEOUT. (The server caps connections too.)
MAX_FRAME = 64 * 1024
FRAME_TIMEOUT = 30.0
HELLO_TIMEOUT = 10.0
MAX_FIELD_DIGITS = 64  # a number field longer than this is not a number IB would send
_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer sent something that is not the TWS protocol as we understand it."""


def field_text(value: object) -> str:
    """One field as text on the wire."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}" if value.is_finite() else ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "Infinite" if value > 0 else "-Infinite"
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, datetime):
        raise TypeError("format times explicitly; the protocol has several time formats")
    return str(value)


def encode(fields: Iterable[object]) -> bytes:
    """A frame: length prefix, then each field followed by NUL."""
    payload = "".join(field_text(f) + "\0" for f in fields).encode("utf-8")
    return _LENGTH.pack(len(payload)) + payload


def split_payload(payload: bytes) -> list[str]:
    text = payload.decode("utf-8", errors="replace")
    fields = text.split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's payload, or None at a clean end of stream."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("the connection closed in the middle of a frame") from None
        return None
    (length,) = _LENGTH.unpack(head)
    if length > MAX_FRAME:
        raise ProtocolError(f"a frame of {length} bytes is not a TWS API message")
    try:
        return await asyncio.wait_for(reader.readexactly(length), FRAME_TIMEOUT)
    except asyncio.IncompleteReadError:
        raise ProtocolError("the connection closed in the middle of a frame") from None
    except TimeoutError:
        raise ProtocolError(
            f"a frame of {length} bytes was not finished within {FRAME_TIMEOUT:g} s"
        ) from None


@dataclass(frozen=True)
class Hello:
    """What the client asked for in its opening: a version range and connect options."""

    min_version: int
    max_version: int
    options: str


async def read_hello(reader: asyncio.StreamReader) -> Hello:
    """The client's greeting and version range, within HELLO_TIMEOUT (a silent connection is
    closed, never kept forever)."""
    try:
        return await asyncio.wait_for(_read_hello(reader), HELLO_TIMEOUT)
    except TimeoutError:
        raise ProtocolError(f"no TWS API greeting within {HELLO_TIMEOUT:g} s") from None


async def _read_hello(reader: asyncio.StreamReader) -> Hello:
    try:
        prefix = await reader.readexactly(len(HELLO))
    except asyncio.IncompleteReadError:
        raise ProtocolError("the client closed before saying hello") from None
    if prefix != HELLO:
        raise ProtocolError("not a TWS API client (no API\\0 greeting)")
    payload = await read_frame(reader)
    if payload is None:
        raise ProtocolError("the client closed before sending its version range")
    text = payload.decode("ascii", errors="replace")
    versions, _, options = text.partition(" ")
    if not versions.startswith("v"):
        raise ProtocolError(f"unexpected version range {text!r}")
    low, sep, high = versions[1:].partition("..")
    try:
        lo = int(low)
        hi = int(high) if sep else lo
    except ValueError:
        raise ProtocolError(f"unexpected version range {text!r}") from None
    return Hello(lo, hi, options)


def negotiate(hello: Hello, supported: Iterable[int]) -> int | None:
    """The highest supported version inside the client's range (the real Gateway answers
    min(client max, its own max)); None when the ranges do not meet."""
    fitting = [v for v in supported if hello.min_version <= v <= hello.max_version]
    return max(fitting) if fitting else None


def _quote(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:40] + "…")


class Fields:
    """A cursor over a request's fields (after the message id)."""

    def __init__(self, fields: list[str], what: str) -> None:
        self._fields = fields
        self._pos = 0
        self.what = what

    def __len__(self) -> int:
        return len(self._fields) - self._pos

    def text(self) -> str:
        if self._pos >= len(self._fields):
            raise ProtocolError(f"{self.what}: the request ended early (field {self._pos + 1})")
        value = self._fields[self._pos]
        self._pos += 1
        return value

    def integer(self, default: int = 0) -> int:
        """A whole number (IB writes some as "5.0"), within a signed 64-bit integer."""
        raw = self.text()
        if raw == "":
            return default
        value = self._decimal(raw, "a whole number")
        if value != value.to_integral_value() or abs(value) >= 2**63:
            raise ProtocolError(f"{self.what}: {_quote(raw)} is not a whole number")
        return int(value)

    def number(self) -> Decimal | None:
        """A decimal number, or None for an empty field (IB's 'unset')."""
        raw = self.text()
        if raw == "" or raw == "Infinite":
            return None
        try:
            if len(raw) > MAX_FIELD_DIGITS:
                raise ArithmeticError
            value = Decimal(raw)
        except ArithmeticError:
            raise ProtocolError(f"{self.what}: {_quote(raw)} is not a number") from None
        # ib_async sends its 'unset' double as an empty field, but a raw 1.7976931348623157e308
        # can still arrive from other clients: treat it as unset too.
        return None if not value.is_finite() or abs(value) > Decimal("1e300") else value

    def _decimal(self, raw: str, what: str) -> Decimal:
        """`raw` as a finite Decimal (ProtocolError naming the request otherwise): never a
        5,000-digit number, inf, nan or 1e400 reaching a handler."""
        try:
            if len(raw) > MAX_FIELD_DIGITS:
                raise ArithmeticError
            value = Decimal(raw.strip())
        except ArithmeticError:
            raise ProtocolError(f"{self.what}: {_quote(raw)} is not {what}") from None
        if not value.is_finite() or abs(value.adjusted()) > 300:
            raise ProtocolError(f"{self.what}: {_quote(raw)} is not {what}")
        return value

    def flag(self) -> bool:
        raw = self.text()
        return raw not in ("", "0", "false", "False")

    def skip(self, count: int) -> None:
        for _ in range(count):
            self.text()
