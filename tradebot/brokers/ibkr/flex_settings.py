"""What the Flex download needs (kept apart from `flex`, which imports ib_async)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlexSettings:
    token: str
    query_id: str
    timeout_s: float

    def __repr__(self) -> str:  # the token never reaches a log
        return f"FlexSettings(query_id={self.query_id!r}, token=***)"
