"""The books: everything the bot writes down and reads back.

* `trade_journal`, `order_journal` — `journal/trades.jsonl` and `journal/orders.jsonl`;
  `journal_cache` — the same journals as the long-running loop follows them (parsed once, then
  only their appended tails);
* `phase_records` — the ladder's files under `logs/phase/`; `ladder/` — the phase ladder
  over them (evaluation, transitions and override, entry limits and reservation);
* `state_store` — the small atomic state files; `equity`, `halt`, `whale_debounce` — the state
  each capability keeps there;
* `risk_report` — can the bot open a trade now, and how big, from all of the above.

Below: `tradebot.core` (pure rules), `tradebot.storage` (durable files), `tradebot.config`.
Above: the brokers, the engine, the backtest and the CLI. Nothing here imports them.
"""
