"""The phase override password: salted scrypt hashes, constant-time checks, lockout.

The password itself is never stored, logged or written anywhere: only
`scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_LEN = 32
MIN_LENGTH = 8
MAX_LENGTH = 1024
MAX_MEM = 256 * 1024 * 1024  # scrypt's memory cap when checking a password


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of `password` in the self-describing format above."""
    salt = os.urandom(16) if salt is None else salt
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=KEY_LEN
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def is_valid_hash(encoded: str) -> bool:
    """Whether `encoded` looks like a hash this module wrote."""
    try:
        _parse(encoded)
    except ValueError:
        return False
    return True


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """(n, r, p, salt, key); ValueError for anything this module would not have written.

    The parameters are bounded (n a power of two up to 2**20, r ≤ 32, p ≤ 16; salt 8–64 bytes,
    key 16–64 bytes), so a tampered hash can never make a check take minutes or gigabytes.
    """
    if not isinstance(encoded, str) or len(encoded) > 400:
        raise ValueError("not a scrypt hash")
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a scrypt hash")
    if not all(x.isascii() and x.isdigit() and len(x) <= 8 for x in parts[1:4]):
        raise ValueError("bad scrypt parameters")
    n, r, p = (int(x) for x in parts[1:4])
    try:
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise ValueError("salt or hash is not base64") from None
    if not (2 <= n <= 2**20 and n & (n - 1) == 0) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ValueError("bad scrypt parameters")
    if 128 * n * r > MAX_MEM // 2:
        raise ValueError("scrypt parameters need too much memory")
    if not 8 <= len(salt) <= 64 or not 16 <= len(key) <= 64:
        raise ValueError("bad salt or hash length")
    return n, r, p, salt, key


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time comparison of `password` against the stored hash."""
    n, r, p, salt, expected = _parse(encoded)
    actual = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=len(expected),
        maxmem=MAX_MEM,
    )
    return hmac.compare_digest(actual, expected)


# Every outcome an audit line (`phase-overrides.jsonl`) may carry; any other is a damaged line.
OUTCOMES = frozenset(
    {
        "granted",  # an override went through
        "wrong_password",  # counts toward the lockout
        "locked_out",
        "no_password",
        "no_change",
        "password_change_started",  # set-password: recorded before the hash is written
        "password_set",  # ... and after it was written
        "password_change_failed",  # ... or after writing it failed (the old one still works)
        "password_changed_elsewhere",  # another command changed it first: nothing changed
    }
)


@dataclass(frozen=True)
class Attempt:
    """An audited override attempt, as far as the lockout cares."""

    ts: datetime
    outcome: str  # one of OUTCOMES


def lockout_until(
    attempts: Iterable[Attempt],
    now: datetime,
    *,
    max_failures: int,
    window: timedelta,
    lockout: timedelta,
) -> datetime | None:
    """When overrides unlock, or None when they are not locked at `now`.

    `max_failures` wrong passwords within `window` (counting only failures after the last
    success or password change) lock overrides for `lockout` from the last of them. Derived from
    the durable audit file, so the lockout survives restarts.
    """
    failures: list[datetime] = []
    for attempt in attempts:
        if attempt.outcome in ("granted", "password_set"):
            failures.clear()
        elif attempt.outcome == "wrong_password":
            failures.append(attempt.ts)
    failures.sort()
    for i in range(len(failures) - max_failures, -1, -1):
        burst = failures[i : i + max_failures]
        if burst[-1] - burst[0] <= window:
            until = burst[-1] + lockout
            return until if until > now else None
    return None
