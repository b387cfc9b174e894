"""Durable storage: append-only JSONL journals and atomically replaced state files.

No other code in tradebot writes files by hand.
"""

from tradebot.storage.atomic import (
    not_durable,
    read_json_state,
    state_lock,
    write_atomic,
    write_json_state,
)
from tradebot.storage.jsonl import JsonlContents, JsonlFile

__all__ = [
    "JsonlContents",
    "JsonlFile",
    "not_durable",
    "read_json_state",
    "state_lock",
    "write_atomic",
    "write_json_state",
]
