"""Issue 23: a daily-loss downgrade is reproducible from the journals alone.

The loop judges today's loss on the broker's marked equity (cash plus each open position at its
mark). The downgrade record, and the daily-loss guard's trip, carry every input: start-of-day
equity, realized P&L today, each open position's mark, the cash and the equity used. An auditor
with the journals (and `risk.paper_equity`) recomputes the equity from the order journal's fills
and the recorded marks, and the loss % from it, to the cent.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.engine.harness import config, events, orders, read_jsonl, run, trades
from tradebot.core.trades import session_of

# A small account with a 2 % daily-loss limit, in trial (counting the simulated trades), whose
# positions stay open (take-profit far away, stop far below): on 2025-07-02 the three scalp
# calls bought at 10:05 are down enough by the 10:14 tick to drop the phase, all three open.
SCENARIO = """
[risk]
paper_equity = 2000
max_daily_loss_pct = 2
take_profit_pct = 900
stop_loss_pct = 95

[phase]
initial = "trial"

[phase.trial]
counted_modes = ["sim"]
"""
DAY = "2025-07-02"
CENT = Decimal("0.01")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _cash(paper_equity: Decimal, records: list[dict[str, Any]], until: datetime) -> Decimal:
    """The simulated account's cash from the order journal: every fill up to `until`, bought
    (or sold) at its price times quantity and multiplier, less its commission."""
    intents = {r["order_ref"]: r for r in records if r["event"] == "intent"}
    cash = paper_equity
    for r in records:
        if r["event"] != "fill" or _time(r["time"]) > until:
            continue
        intent = intents[r["order_ref"]]
        amount = Decimal(r["price"]) * r["qty"] * intent["contract"]["multiplier"]
        cash += (-amount if intent["action"] == "BUY" else amount) - Decimal(r["commission"])
    return cash


def _open_quantities(records: list[dict[str, Any]], until: datetime) -> dict[str, int]:
    """Each entry's quantity still held at `until`, from the fills."""
    intents = {r["order_ref"]: r for r in records if r["event"] == "intent"}
    held: dict[str, int] = {}
    for r in records:
        if r["event"] != "fill" or _time(r["time"]) > until:
            continue
        intent = intents[r["order_ref"]]
        entry = r["order_ref"] if intent["role"] == "entry" else intent["parent_ref"]
        held[entry] = held.get(entry, 0) + (r["qty"] if intent["action"] == "BUY" else -r["qty"])
    return {ref: qty for ref, qty in held.items() if qty}


def test_a_daily_loss_downgrade_with_open_positions_recomputes_to_the_cent(
    tmp_path: Path,
) -> None:
    loaded = config(tmp_path, SCENARIO)
    run(loaded, DAY)
    history = read_jsonl(loaded.logs_dir / "phase" / "phase-history.jsonl")
    (record,) = [r for r in history if r["trigger"] == "auto_downgrade"]
    assert (record["from_phase"], record["to_phase"]) == ("trial", "proof")
    at = _time(record["ts"])
    inputs = record["inputs"]["daily_loss"]
    positions = inputs["positions"]
    assert positions, "the scenario needs an open position at the downgrade"

    # The positions the record marked are exactly those the order journal holds then.
    journal = orders(loaded)
    assert {p["ref"]: p["qty"] for p in positions} == _open_quantities(journal, at)
    assert all(Decimal(p["mark"]) > 0 for p in positions)

    # Start-of-day equity: a new account, nothing closed before today.
    paper = loaded.settings.risk.paper_equity
    before = [t for t in trades(loaded) if t.session < session_of(at)]
    start = paper + sum((t.pnl for t in before), Decimal(0))
    assert Decimal(inputs["start_of_day_equity"]) == start

    # Realized P&L today: the closed trades of today's session up to then.
    realized = sum(
        (t.pnl for t in trades(loaded) if t.session == session_of(at) and t.exit_time <= at),
        Decimal(0),
    )
    assert Decimal(inputs["realized_pnl_today"]) == realized

    # The equity used: the cash the fills leave, plus each position at its recorded mark.
    cash = _cash(paper, journal, at)
    assert Decimal(inputs["cash"]) == cash
    marked = sum((Decimal(p["mark"]) * p["qty"] * p["multiplier"] for p in positions), Decimal(0))
    equity = (cash + marked).quantize(CENT)
    assert Decimal(inputs["equity"]) == equity

    # The loss and its percentage, to the cent and to the recorded places.
    loss = start - equity
    assert Decimal(inputs["loss_usd"]) == loss
    pct = loss * 100 / start
    assert Decimal(inputs["loss_pct"]) == pct.quantize(Decimal("0.000001"))
    assert pct > loaded.settings.risk.max_daily_loss_pct
    shown = f"${loss:,.2f} = {pct.quantize(CENT)} % of start-of-day equity ${start:,.2f}"
    assert shown in record["reason"]
    assert f"{len(positions)} position" in record["reason"]

    # The daily-loss guard tripped on the same reading at the same tick, with the same inputs,
    # and the refusals it caused say so with the numbers.
    trip = json.loads((loaded.state_dir / "daily-loss.json").read_text(encoding="utf-8"))
    assert trip["inputs"] == inputs
    blocked = [
        e for e in events(loaded) if e["event"] == "entry_refused" and e["rule"] == "blocked"
    ]
    stopped = [e for e in blocked if "daily_loss" in e and e["ts"] == record["ts"]]
    assert stopped and all(e["daily_loss"] == inputs for e in stopped)
    each = ", ".join(f"{p['ref']} {p['qty']} × {p['mark']}" for p in positions)
    text = f"cash ${cash:,.2f} + {len(positions)} positions marked at ${marked:,.2f} ({each})"
    assert all(text in e["message"] for e in stopped)
    assert text in record["reason"]
