"""`tradebot backtest --options DIR`: real option quotes instead of the model wherever they
exist for the contract and minute, the model elsewhere, and the report counting both.

The quotes here are "priced by hand": a small formula of the underlying's last completed bar
(`hand_quote`), one quote per contract per minute, stamped at the minute's start. A backtest
reading them from a CSV or a Lean zip must equal a backtest whose market looks the same table
up by hand — the same orders, fills and trades — with not one option quote modelled."""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.backtest.helpers import NOW
from tests.backtest.test_cli import _tree
from tests.cli.conftest import invoke
from tests.engine.harness import config
from tradebot.backtest.engine import BacktestResult, run_backtest
from tradebot.backtest.plan import BacktestRequest, prepare
from tradebot.backtest.report import build_report
from tradebot.config import LoadedConfig
from tradebot.core.instruments import OptionContract
from tradebot.core.sessions import session_open_close
from tradebot.market.model import MarketModel
from tradebot.market.option_quotes import RealQuote
from tradebot.market.synthetic import SyntheticBars

DAYS = (date(2025, 6, 30), date(2025, 7, 1))  # 06-30: the earlier bars of the realized vol
TRADED = date(2025, 7, 1)
EXPIRY = date(2025, 7, 2)  # the first expiry with DTE ≥ 1 on 07-01 (SPY lists dailies)
CONFIG = '[broker.sim]\nseed = 7\n[trading]\nmode = "paper"\nsymbols = ["SPY"]\n'
Table = dict[tuple[str, int, datetime], tuple[Decimal, Decimal]]  # (right, strike, minute)


def _bars(root: Path) -> Path:
    """The synthetic market's SPY bars of DAYS as a CSV (`--bars`)."""
    source = SyntheticBars(7)
    frame = pd.concat([source.session_bars("SPY", d) for d in DAYS])
    folder = root / "bars"
    folder.mkdir()
    out = frame[["open", "high", "low", "close", "volume"]].copy()
    out.index = pd.DatetimeIndex(frame.index).strftime("%Y-%m-%dT%H:%M:%SZ")
    out.index.name = "timestamp"
    out.to_csv(folder / "SPY.csv")
    return folder


def hand_quote(spot: float, strike: int, right: str) -> tuple[Decimal, Decimal]:
    """Intrinsic value plus a bell of time value around the money, 4 cents wide."""
    intrinsic = max(0.0, spot - strike) if right == "C" else max(0.0, strike - spot)
    value = intrinsic + 0.9 * math.exp(-(((strike - spot) / (0.006 * spot)) ** 2) / 2) + 0.06
    bid = Decimal(math.floor(value * 100) - 2) / 100
    return max(bid, Decimal(0)), max(bid, Decimal(0)) + Decimal("0.04")


def hand_table(bars: Path) -> Table:
    """A quote for every strike within ±5 % of TRADED's range, both rights, every minute from
    09:30 to 16:30 New York: at minute m, priced on the close of the bar completed by m."""
    frame = pd.read_csv(bars / "SPY.csv", index_col=0, parse_dates=True)
    opens, closes = session_open_close(TRADED)
    day = frame[(frame.index >= opens) & (frame.index < closes)]
    low, high = int(day["low"].min() * 0.95), math.ceil(day["high"].max() * 1.05)
    starts = day.index.to_pydatetime()
    table: Table = {}
    minute = opens
    while minute <= closes + timedelta(minutes=30):
        done = int(np.searchsorted(starts, minute - timedelta(minutes=1), side="right"))
        spot = float(day["close"].iloc[done - 1]) if done else float(day["open"].iloc[0])
        for strike in range(low, high + 1):
            for right in ("C", "P"):
                table[(right, strike, minute)] = hand_quote(spot, strike, right)
        minute += timedelta(minutes=1)
    return table


def write_csv(table: Table, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["time,contract,bid,ask"]
    for (right, strike, minute), (bid, ask) in table.items():
        occ = f"SPY{EXPIRY:%y%m%d}{right}{strike * 1000:08d}"
        lines.append(f"{minute:%Y-%m-%dT%H:%M:%SZ},{occ},{bid},{ask}")
    path = folder / "quotes.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_lean(table: Table, folder: Path) -> Path:
    """The same quotes as Lean minute quote bars: the bar of minute m − 1 closes at m."""
    folder.mkdir(parents=True, exist_ok=True)
    members: dict[tuple[str, int], list[str]] = {}
    midnight = datetime(2025, 7, 1, 4, 0, tzinfo=UTC)  # 00:00 New York (EDT)
    for (right, strike, minute), (bid, ask) in table.items():
        ms = int((minute - midnight).total_seconds() * 1000) - 60_000
        b, a = int(bid * 10_000), int(ask * 10_000)
        members.setdefault((right, strike), []).append(f"{ms},{b},{b},{b},{b},5,{a},{a},{a},{a},7")
    path = folder / "20250701_quote_american.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for (right, strike), rows in members.items():
            word = "call" if right == "C" else "put"
            name = f"20250701_spy_minute_quote_american_{word}_{strike * 10_000}_20250702.csv"
            archive.writestr(name, "\n".join(rows) + "\n")
    return path


class HandBook:
    """The table looked up by hand: the quote stamped at the start of `t`'s minute."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def at(self, contract: OptionContract, t: datetime) -> RealQuote | None:
        minute = t.astimezone(UTC).replace(second=0, microsecond=0)
        found = self.table.get((contract.right, int(contract.strike), minute))
        if contract.expiry != EXPIRY or found is None or contract.strike % 1:
            return None
        return RealQuote(found[0], found[1], minute, None, None)

    def describe(self) -> str:
        return "by hand"


def _run(loaded: LoadedConfig, bars: Path, out: Path, options: Path | None) -> BacktestResult:
    request = BacktestRequest(bars=bars, start=TRADED, end=TRADED, out=out, options=options)
    return run_backtest(prepare(request, loaded, NOW))


def _journals(out: Path) -> dict[str, str]:
    return {
        name: (out / "journal" / name).read_text(encoding="utf-8")
        for name in ("orders.jsonl", "trades.jsonl")
    }


@pytest.fixture(scope="module")
def market_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Table]:
    root = tmp_path_factory.mktemp("quotes")
    bars = _bars(root)
    return bars, hand_table(bars)


def test_real_quotes_for_every_minute_equal_a_backtest_priced_by_hand(
    tmp_path: Path, market_files: tuple[Path, Table]
) -> None:
    bars, table = market_files
    loaded = config(tmp_path, base=CONFIG)
    from_csv = _run(loaded, bars, tmp_path / "csv", write_csv(table, tmp_path / "q-csv").parent)
    from_lean = _run(loaded, bars, tmp_path / "lean", write_lean(table, tmp_path / "q-lean").parent)
    request = BacktestRequest(bars=bars, start=TRADED, end=TRADED, out=tmp_path / "hand")
    plan = prepare(request, loaded, NOW)
    market = plan.market
    hand_priced = MarketModel(market.source, market.calendar, market.params, HandBook(table))  # type: ignore[arg-type]
    by_hand = replace(plan, market=hand_priced)
    hand = run_backtest(by_hand)
    assert hand.summary.trades, "the hand-priced session must trade for the comparison to mean much"
    assert _journals(tmp_path / "csv") == _journals(tmp_path / "hand")
    assert _journals(tmp_path / "lean") == _journals(tmp_path / "hand")
    for result in (from_csv, from_lean):
        counts = build_report(result)["option_quotes"]
        assert counts["modelled"] == 0 and counts["real"] > 0
        assert counts["real"] == hand.plan.market.quote_counts.real
    # Every fill crossed the table's quote of its minute: a buy at its ask or (a resting limit
    # reached by it) above, a sell at its bid or below — never better than the real market.
    for line in _journals(tmp_path / "csv")["trades.jsonl"].splitlines():
        record = json.loads(line)
        key = (record["right"], int(Decimal(record["strike"])))
        entry = datetime.fromisoformat(record["entry_time"]).replace(second=0, microsecond=0)
        exit_ = datetime.fromisoformat(record["exit_time"]).replace(second=0, microsecond=0)
        assert Decimal(record["entry_price"]) >= table[(*key, entry)][1]
        assert Decimal(record["exit_price"]) <= table[(*key, exit_)][0]


@pytest.mark.parametrize("write", [write_csv, write_lean])
def test_real_quotes_where_present_the_model_elsewhere_counted_in_the_report(
    tmp_path: Path, market_files: tuple[Path, Table], write: Any
) -> None:
    bars, table = market_files
    morning = {k: v for k, v in table.items() if k[2].hour < 16}  # until 12:00 New York
    loaded = config(tmp_path, base=CONFIG)
    result = _run(loaded, bars, tmp_path / "out", write(morning, tmp_path / "q").parent)
    report = build_report(result)
    counts = report["option_quotes"]
    assert counts["real"] > 0 and counts["modelled"] > 0
    assert counts["source"].startswith(f"{len(morning):,} real option quotes of ")
    assert (
        f"{counts['real']:,} of the backtest's {counts['real'] + counts['modelled']:,}"
        in (report["pricing"])
    )
    modelled = _run(loaded, bars, tmp_path / "none", None)
    none = build_report(modelled)["option_quotes"]
    assert none == {"real": 0, "modelled": none["modelled"], "source": None}
    assert "were modelled (no --options)" in build_report(modelled)["pricing"]


def test_quotes_of_other_days_or_symbols_are_a_warning(
    tmp_path: Path, market_files: tuple[Path, Table]
) -> None:
    bars, _ = market_files
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "q.csv").write_text(
        "time,contract,bid,ask\n2025-06-02 10:00:00,SPY250603C00600000,1,1.1\n", encoding="utf-8"
    )
    loaded = config(tmp_path, base=CONFIG)
    result = _run(loaded, bars, tmp_path / "out", folder)
    warnings = build_report(result)["warnings"]
    assert any(
        "no quotes of SPY options on the sessions replayed (they cover 2025-06-02 … 2025-06-02)"
        in w
        for w in warnings
    ), warnings


CSV_HEAD = "time,contract,bid,ask\n2025-07-01 10:00:00,"
MEMBER = "20250701_spy_minute_quote_american_call_6000000_20250702.csv"


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("q.csv", f"{CSV_HEAD}SPY,1,2\n", "q.csv, row 2: contract 'SPY' is not an OCC"),
        ("q.csv", f"{CSV_HEAD}SPY250702C00600000,2,1\n", "q.csv, row 2: bid '2' and ask '1'"),
        ("20250701_quote_american.zip", None, f"20250701_quote_american.zip: {MEMBER}, row 2:"),
    ],
)
def test_bad_option_files_exit_3_naming_file_and_row_and_write_nothing(  # type: ignore[no-untyped-def]
    write_config, tmp_path: Path, market_files: tuple[Path, Table], name: str, body: str | None,
    message: str,
) -> None:  # fmt: skip
    write_config(CONFIG)
    bars, _ = market_files
    folder = tmp_path / "q"
    folder.mkdir()
    if body is not None:
        (folder / name).write_text(body, encoding="utf-8")
    else:
        with zipfile.ZipFile(folder / name, "w") as archive:
            archive.writestr(MEMBER, "36000000,1,1,1,1,1,2,2,2,2,1\n36060000,1,1,1,1,1,2,2,2\n")
    before = _tree(tmp_path)
    result = invoke(
        ["backtest", "--bars", str(bars), "--options", "q", "--out", "out", "--from", "2025-07-01"]
    )
    assert result.exit_code == 3, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert _tree(tmp_path) == before and not (tmp_path / "out").exists()


def test_options_go_with_bars_not_the_synthetic_market(write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_config(CONFIG)
    (tmp_path / "q").mkdir()
    result = invoke(["backtest", "--synthetic", "--sessions", "1", "--options", "q"])
    assert result.exit_code == 2
    assert "--options goes with --bars" in result.stderr
