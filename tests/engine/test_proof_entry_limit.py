"""Proof's one entry a session, through the real loop on the simulated broker (issue 23): an
entry that dies unfilled does not use the session's entry, a filled one does, and every refusal
names the rule and its numbers.

Seed 7 on 2025-07-01 gives QQQ a scalp entry at 10:59 New York that the market never reaches
(the loop cancels it unfilled after `trading.interval_s`, 11:02) and another at 11:05 that
fills; started at the open, QQQ's first entry (10:02) fills.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tests.cli.conftest import invoke
from tests.engine.harness import config, orders, refusals, run, set_phase, trades
from tradebot.config import LoadedConfig
from tradebot.core.orders import OrderEvent, session_entries

DAY = date(2025, 7, 1)
BEFORE = datetime(2025, 6, 30, 20, 0, tzinfo=UTC)  # proof since the session before
QQQ = '[broker.sim]\nseed = 7\n[trading]\nmode = "paper"\nsymbols = ["QQQ"]\n'
THREE = (
    '[broker.sim]\nseed = 7\n[trading]\nmode = "paper"\nsymbols = ["QQQ", "SPY", "IWM"]\n'
    "max_concurrent_symbols = 3\n"
)
LIMIT = "entry_limit: phase proof allows 1 entry per session and 1 were made in the 2025-07-01 "
NEXT = "next allowed at the next session open (2025-07-02 09:35 EDT)"


def _entry_records(loaded: LoadedConfig) -> dict[str, list[dict[str, Any]]]:
    """Each entry's order records, by its ref, in journal order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in orders(loaded):
        if r["role"] == "entry":
            out.setdefault(r["order_ref"], []).append(r)
    return out


def _limit_refusals(loaded: LoadedConfig) -> list[dict[str, Any]]:
    """The refusals by proof's entry limit, each checked to name its rule once."""
    found = [e for e in refusals(loaded) if "entry_limit:" in e["message"]]
    for e in found:
        assert e["message"].count("entry_limit:") == 1, e["message"]
    return found


def test_an_entry_cancelled_unfilled_leaves_proofs_entry_for_the_next_signal(
    tmp_path: Path,
) -> None:
    """Proof's first entry of the session rests unfilled, the loop cancels it at its time-out
    and the broker confirms; the next signal of the same session is sent and fills. While the
    first one still worked it counted (its outcome was unknown); once dead it does not. After a
    restart with more symbols, every other signal that session is refused, naming the rule, the
    count, the cancelled one not counted and when the next entry is allowed; `risk check` on
    the journals the loop wrote says the same."""
    loaded = config(tmp_path, base=QQQ)
    set_phase(loaded, "proof", BEFORE)
    first, _ = run(loaded, "2025-07-01T10:50", "2025-07-01T11:10")
    entries = _entry_records(loaded)
    assert list(entries) == ["QQQ-250701-s1", "QQQ-250701-s2"]
    s1, s2 = entries["QQQ-250701-s1"], entries["QQQ-250701-s2"]
    assert not any(r["event"] == "fill" for r in s1)
    assert s1[-1]["event"] == "status" and s1[-1]["status"] == "cancelled"
    assert s1[0]["session"] == s2[0]["session"] == DAY.isoformat()
    fills = [r for r in s2 if r["event"] == "fill"]
    assert fills and sum(r["qty"] for r in fills) == s2[0]["qty"]
    assert s2[0]["ts"] > s1[-1]["ts"]  # sent after the broker confirmed the cancel
    assert first.entries_sent == 2
    # While s1 was still working, the limit was used: a signal then was refused.
    working = [e for e in _limit_refusals(loaded) if e["ts"] < s1[-1]["ts"]]
    assert working and all(LIMIT + "session; " + NEXT in e["message"] for e in working)
    counted = session_entries([OrderEvent.from_record(r) for r in orders(loaded)], DAY)
    assert (counted.counted, counted.cancelled_unfilled) == (1, 1)

    # A restart with three symbols: the journals carry the count; nothing more is sent.
    loaded = config(tmp_path, base=THREE)
    again, _ = run(loaded, "2025-07-01T11:10", "2025-07-02")
    assert again.entries_sent == 0
    assert list(_entry_records(loaded)) == ["QQQ-250701-s1", "QQQ-250701-s2"]
    later = [e for e in _limit_refusals(loaded) if e["ts"] >= "2025-07-01T15:10:00Z"]
    assert {e["symbol"] for e in later} >= {"SPY", "IWM"}
    for e in later:
        assert LIMIT + "session (1 more cancelled unfilled, not counted); " + NEXT in e["message"]
    assert [t.trade_id for t in trades(loaded)] == ["QQQ-250701-s2"]

    at = ["--at", "2025-07-01T19:30:00Z"]  # 15:30 EDT, after the last trade's exit
    checked = invoke(["--config", str(loaded.path), "risk", "check", "--json", *at])
    doc = json.loads(checked.stdout)
    assert (doc["phase"]["entries_this_session"], doc["phase"]["entries_cancelled_unfilled"]) == (
        1,
        1,
    )
    assert [b["rule"] for b in doc["blocking"]] == ["entry_limit"]
    shown = invoke(["--config", str(loaded.path), "risk", "check", *at])
    assert shown.exit_code == 4, shown.stderr
    assert "entries this session: 1 of 1 (1 cancelled unfilled, not counted)" in " ".join(
        shown.stdout.split()
    )


def test_a_filled_entry_uses_proofs_only_entry_of_the_session(tmp_path: Path) -> None:
    """Proof's first entry fills: every later signal that session is refused, by the rule's
    name with its numbers (1 allowed, 1 made, the session) and when the next is allowed; the
    next session's first signal is sent again."""
    loaded = config(tmp_path, base=QQQ)
    set_phase(loaded, "proof", BEFORE)
    summary, _ = run(loaded, "2025-07-01", "2025-07-02T11:00")
    entries = _entry_records(loaded)
    today = [ref for ref, rs in entries.items() if rs[0]["session"] == DAY.isoformat()]
    assert today == ["QQQ-250701-s1"]
    assert any(r["event"] == "fill" for r in entries["QQQ-250701-s1"])
    refused = [e for e in _limit_refusals(loaded) if e["ts"].startswith("2025-07-01")]
    assert refused, "no later signal that session was refused"
    for e in refused:
        assert e["ts"] > entries["QQQ-250701-s1"][0]["ts"]
        assert LIMIT + "session; " + NEXT in e["message"]
        assert "cancelled unfilled" not in e["message"]
    events = [OrderEvent.from_record(r) for r in orders(loaded)]
    assert session_entries(events, DAY).counted == 1
    tomorrow = [ref for ref, rs in entries.items() if rs[0]["session"] == "2025-07-02"]
    assert len(tomorrow) <= 1 and summary.entries_sent == 1 + len(tomorrow)


def test_two_signals_in_one_tick_get_proofs_one_entry_between_them(tmp_path: Path) -> None:
    """SPY and IWM signal at the same step (10:50 New York): the first is sent, the second is
    refused where the entry is reserved under the ladder's lock — by the rule's name, once,
    with its numbers — and no second intent reaches the journal."""
    loaded = config(tmp_path, base=THREE)
    set_phase(loaded, "proof", BEFORE)
    summary, _ = run(loaded, "2025-07-01T10:50", "2025-07-01T11:00")
    assert list(_entry_records(loaded)) == ["SPY-250701-s1"]
    assert summary.entries_sent == 1
    sent = _entry_records(loaded)["SPY-250701-s1"][0]["ts"]
    same_tick = [e for e in _limit_refusals(loaded) if e["ts"] == sent]
    assert [(e["symbol"], e["rule"]) for e in same_tick] == [("IWM", "entry_limit")]
    assert same_tick[0]["message"] == f"IWM scalp: {LIMIT}session; {NEXT}"
