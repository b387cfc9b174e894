"""Interactive Brokers (IB Gateway / TWS) through ib_async: the real-money path.

This package is the only code that imports ib_async (ruff's banned-api rule enforces it). Split
like nautilus' adapter:

* `settings` — what it needs from the configuration (`IbkrSettings`), the restart window;
* `connection` — one `IB` per connection on the loop's event loop, connect checks, reconnect
  with capped backoff, 1100/1101/1102, `generation`, `entries_paused`;
* `codes` — tradebot's own reading of IB's error codes (pure);
* `tracker` — our book of IB orders and executions, by orderRef/permId (pure);
* `ids` — order ids above IB's next id and our persisted high-water mark;
* `market_data` — contracts, chains, incremental bars with pacing backoff, quotes;
* `orders` — native brackets, orders, cancels, what IB did;
* `mapping` — ib_async objects ↔ tradebot types;
* `broker` — `IbkrBroker`, the loop's `Broker`;
* `clock` — `GatewayClock`, for rehearsals against `tradebot gateway sim`;
* `probe` — `tradebot gateway test`.

Importing this package does not import ib_async; `broker`, `probe` and the modules they use do.
"""
