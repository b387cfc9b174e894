"""Order ids that are never reused, even when the gateway forgets them.

IB numbers orders per client id and tells the client the next free one (`nextValidId`) at every
connection. After a gateway restart that number can roll back (Lean's issue #242: ids
38100–38102 were issued twice), and an id that was used before is either refused ("duplicate
order id") or, worse, taken for a modification of the old order. tradebot therefore keeps its
own high-water mark per client id in `state/ibkr-order-ids.json`, written (atomically, fsynced)
*before* the orders that use it are sent, and numbers new orders from
max(server's next id, our high-water mark + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tradebot.errors import CorruptRecordError
from tradebot.storage import read_json_state, write_json_state

STATE_FILE = "ibkr-order-ids.json"
MAX_ID = 2**31 - 1  # IB order ids are 32-bit signed integers


class OrderIds:
    def __init__(
        self,
        state_dir: Path,
        client_id: int,
        *,
        persist: Callable[[Path, Mapping[str, Any]], None] = write_json_state,
    ) -> None:
        self.path = Path(state_dir) / STATE_FILE
        self.client_id = client_id
        self._persist = persist
        self._high = self._read().get(str(client_id), 0)

    @property
    def high(self) -> int:
        """The highest order id this client id has used (or seen used), 0 for none."""
        return self._high

    def _read(self) -> dict[str, int]:
        state = read_json_state(self.path)
        if state is None:
            return {}
        clients = state.get("clients")
        if state.get("v") != 1 or not isinstance(clients, dict):
            raise CorruptRecordError(self.path, None, "not a tradebot order-id file")
        out: dict[str, int] = {}
        for key, value in clients.items():
            if type(value) is not int or not 0 <= value <= MAX_ID:
                raise CorruptRecordError(
                    self.path, None, f"client {key}: {value!r} is not an order id"
                )
            out[str(key)] = value
        return out

    def observe(self, order_id: int) -> None:
        """An id IB reported as this client's (an open order from before a restart)."""
        if 0 < order_id <= MAX_ID:
            self._high = max(self._high, order_id)

    def reserve(self, count: int, server_next: int) -> list[int]:
        """`count` consecutive new ids, above both the server's next id and every id we used.

        The new high-water mark is on disk before this returns: an order is never sent with an
        id that a crash right after could make us use again."""
        if count <= 0:
            raise ValueError("count must be positive")
        first = max(server_next, self._high + 1, 1)
        last = first + count - 1
        if last > MAX_ID:
            raise ValueError("IB order ids are exhausted for this client id; use another one")
        clients = self._read()
        clients[str(self.client_id)] = max(last, clients.get(str(self.client_id), 0))
        self._persist(self.path, {"v": 1, "clients": clients})
        self._high = last
        return list(range(first, last + 1))
