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
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a scrypt hash")
    n, r, p = (int(x) for x in parts[1:4])
    salt = base64.b64decode(parts[4], validate=True)
    key = base64.b64decode(parts[5], validate=True)
    if n < 2 or r < 1 or p < 1 or not salt or not key:
        raise ValueError("bad scrypt parameters")
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
        maxmem=256 * 1024 * 1024,
    )
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class Attempt:
    """An audited override attempt, as far as the lockout cares."""

    ts: datetime
    outcome: str  # granted | wrong_password | locked_out | no_password | password_set | ...


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
