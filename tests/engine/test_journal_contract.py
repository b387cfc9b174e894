"""Contract of `journal/orders.jsonl` and `journal/trades.jsonl` as the loop writes them: the
keys, the types, money as decimal strings, times as UTC ISO-8601 with Z."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.engine.harness import config, orders, read_jsonl, run
from tradebot.config import LoadedConfig
from tradebot.core.trades import TRADE_FIELDS

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
DAY = re.compile(r"^\d{4}-\d\d-\d\d$")
COMMON = {"v", "ts", "event", "order_ref", "role", "session", "mode"}
BY_EVENT = {
    "intent": {
        "symbol",
        "strategy",
        "phase",
        "contract",
        "action",
        "qty",
        "order_type",
        "tif",
        "limit",
        "stop",
        "parent_ref",
        "stop_loss_pct",
        "exit_reason",
        "emulated",
    },
    "submitted": {"order_id", "perm_id", "status"},
    "status": {"status", "reason"},
    "fill": {"exec_id", "qty", "price", "commission", "time", "filled_qty", "kind"},
}
CONTRACT = {
    "symbol",
    "expiry",
    "strike",
    "right",
    "multiplier",
    "trading_class",
    "exchange",
    "currency",
    "con_id",
    "tick",
    "local_symbol",
}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> LoadedConfig:
    loaded = config(tmp_path_factory.mktemp("contract"))
    run(loaded, "2025-07-01", "2025-07-02")
    return loaded


def _money(value: Any) -> None:
    assert isinstance(value, str), value
    assert Decimal(value).is_finite()


def test_order_events(session: LoadedConfig) -> None:
    records = orders(session)
    assert {r["event"] for r in records} == set(BY_EVENT)
    for r in records:
        assert COMMON | BY_EVENT[r["event"]] <= set(r), r
        assert r["v"] == 1 and TIME.match(r["ts"]) and DAY.match(r["session"])
        assert r["role"] in ("entry", "take_profit", "stop_loss", "exit")
        assert r["mode"] in ("sim", "paper", "live", "dry_run")
        if r["event"] == "intent":
            assert set(r["contract"]) >= CONTRACT
            assert r["contract"]["right"] in ("C", "P") and DAY.match(r["contract"]["expiry"])
            _money(r["contract"]["strike"])
            assert isinstance(r["qty"], int) and r["qty"] > 0
            assert r["action"] in ("BUY", "SELL") and r["order_type"] in ("LMT", "STP", "MKT")
            for key in ("limit", "stop"):
                if r[key] is not None:
                    _money(r[key])
            if r["role"] == "entry":
                for key in ("signal", "sizing", "contract_choice", "quote", "bracket"):
                    assert key in r
                _money(r["equity"])
                _money(r["bracket"]["take_profit"])
                _money(r["bracket"]["stop_loss"])
        elif r["event"] == "fill":
            _money(r["price"])
            _money(r["commission"])
            assert TIME.match(r["time"]) and isinstance(r["qty"], int)
            assert r["kind"] in ("trade", "expiry")
        elif r["event"] == "submitted":
            assert isinstance(r["order_id"], int) and isinstance(r["perm_id"], int)


def test_trade_records(session: LoadedConfig) -> None:
    records = read_jsonl(Path(session.logs_dir) / "journal" / "trades.jsonl")
    assert records
    for r in records:
        assert set(TRADE_FIELDS) <= set(r), r
        assert r["v"] == 1 and r["mode"] == "sim" and r["phase"] == "experience"
        for key in ("strike", "entry_price", "exit_price", "commission", "risk", "pnl"):
            _money(r[key])
        assert Decimal(r["commission"]) >= Decimal("2.00")  # $1 minimum, in and out
        assert TIME.match(r["entry_time"]) and TIME.match(r["exit_time"])
        assert r["exit_reason"] in ("take_profit", "stop_loss", "flatten", "manual", "expired")
        assert isinstance(r["qty"], int) and r["multiplier"] == 100
