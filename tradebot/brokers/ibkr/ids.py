"""Order ids that are never reused, even when the gateway forgets them.

IB numbers orders per client id and tells the client the next free one (`nextValidId`) at every
connection. After a gateway restart that number can roll back (Lean's issue #242: ids
38100–38102 were issued twice), and an id that was used before is either refused ("duplicate
order id") or, worse, taken for a modification of the old order. tradebot therefore keeps its
own high-water mark per client id in `state/ibkr-order-ids.json`, written (atomically, fsynced)
*before* the orders that use it are sent, and numbers new orders from
max(server's next id, our high-water mark + 1).

The same file remembers which orderRef each of our recent order ids carried (written with the
ids, before the orders are sent): a Gateway that does not echo orderRef back (some builds, orders
touched in TWS) still has its reports matched to our orders by order id + client id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tradebot.errors import CorruptRecordError
from tradebot.storage import read_json_state, write_json_state

STATE_FILE = "ibkr-order-ids.json"
MAX_ID = 2**31 - 1  # IB order ids are 32-bit signed integers
KEEP_REFS = 2000  # order id → orderRef pairs remembered (weeks of brackets)


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
        self._refs: dict[int, str] = {}
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
        refs = state.get("refs", {})
        if not isinstance(refs, dict):
            raise CorruptRecordError(self.path, None, "refs is not a table of order ids")
        prefix = f"{self.client_id}:"
        self._refs = {
            int(k[len(prefix) :]): str(v)
            for k, v in refs.items()
            if str(k).startswith(prefix) and str(k)[len(prefix) :].isdigit()
        }
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

    def ref_of(self, order_id: int) -> str:
        """The orderRef our order `order_id` was sent with ("" when unknown)."""
        return self._refs.get(order_id, "")

    def id_of(self, order_ref: str) -> int:
        """The latest order id sent with `order_ref` (0 when none is remembered)."""
        return max((i for i, r in self._refs.items() if r == order_ref), default=0)

    def reserve(self, count: int, server_next: int, refs: list[str] | None = None) -> list[int]:
        """`count` consecutive new ids, above both the server's next id and every id we used,
        remembered with the orderRefs they are for (`refs`, in order).

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
        ids = list(range(first, last + 1))
        for order_id, ref in zip(ids, refs or [], strict=False):
            self._refs[order_id] = ref
        for old in sorted(self._refs)[:-KEEP_REFS]:
            del self._refs[old]
        state = read_json_state(self.path) or {}
        others = {
            k: v
            for k, v in dict(state.get("refs", {})).items()
            if not str(k).startswith(f"{self.client_id}:")
        }
        mine = {f"{self.client_id}:{i}": r for i, r in self._refs.items()}
        self._persist(self.path, {"v": 1, "clients": clients, "refs": {**others, **mine}})
        self._high = last
        return ids
