"""The loop's journal caches: drop-in for `TradeJournal` / `OrderJournal`, reading only tails."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import trade
from tests.phase_helpers import NOW, series_of
from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal
from tradebot.books.ladder import PhaseLadder
from tradebot.books.order_journal import OrderJournal
from tradebot.books.trade_journal import TradeJournal
from tradebot.config import LoadedConfig, load_config
from tradebot.core.metrics import TradeSeries
from tradebot.core.trades import ClosedTrade, session_of
from tradebot.errors import CorruptRecordError
from tradebot.storage import JsonlFile

TODAY = session_of(NOW)


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    return load_config(tmp_path / "config.toml")


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path / "logs"


def _write(journal: TradeJournal, trades: list[ClosedTrade]) -> None:
    for t in trades:
        journal.append(t)


def _event(
    ref: str,
    *,
    session: date = TODAY,
    event: str = "intent",
    role: str = "entry",
    status: str | None = None,
    ts: datetime = NOW,
    **extra: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "v": 1,
        "ts": ts,
        "event": event,
        "order_ref": ref,
        "role": role,
        "session": session,
        "mode": "live",
        **extra,
    }
    if status is not None:
        record["status"] = status
    return record


def _replace_file(path: Path, lines: list[str]) -> None:
    """A hand repair: a new file moved into place (another inode)."""
    fresh = path.with_name("repaired.jsonl")
    fresh.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(fresh, path)


def _trade_line(t: ClosedTrade) -> str:
    return t.model_dump_json()


# -- CachedTradeJournal ------------------------------------------------------------------------


def test_trades_read_like_the_uncached_journal_as_the_file_grows(logs: Path) -> None:
    plain, cached = TradeJournal(logs), CachedTradeJournal(logs)
    assert cached.read().trades == [] and cached.read().warnings == []
    _write(plain, series_of([10, -5, 20]))
    assert cached.read().trades == plain.read().trades
    _write(plain, series_of([7, -3], start_day=5))
    assert cached.read().trades == plain.read().trades
    assert len(cached.read().trades) == 5


def test_the_returned_trade_list_is_the_callers_own(logs: Path) -> None:
    _write(TradeJournal(logs), series_of([10, -5]))
    cached = CachedTradeJournal(logs)
    cached.read().trades.clear()
    assert len(cached.read().trades) == 2


def test_series_equals_a_series_of_the_trades_read(logs: Path) -> None:
    plain, cached = TradeJournal(logs), CachedTradeJournal(logs)
    _write(plain, series_of([10, -5, 20, 0, -1]))
    series, warnings = cached.series()
    assert warnings == []
    assert series == TradeSeries.of(cached.read().trades)
    assert series == plain.series()[0]
    _write(plain, series_of([3], start_day=9))
    assert cached.series()[0] == TradeSeries.of(plain.read().trades)  # not a stale series
    assert len(cached.series()[0]) == 6


def test_a_bad_trade_line_is_the_same_error_as_uncached_and_stays_reported(logs: Path) -> None:
    plain, cached = TradeJournal(logs), CachedTradeJournal(logs)
    _write(plain, series_of([10]))
    cached.read()
    record = trade(5).model_dump(mode="json")
    record["qty"] = 0
    JsonlFile(plain.path).append(record)
    with pytest.raises(CorruptRecordError) as expected:
        plain.read()
    for _ in range(2):
        with pytest.raises(CorruptRecordError) as got:
            cached.read()
        assert str(got.value) == str(expected.value)
        assert got.value.line == 2
    with pytest.raises(CorruptRecordError):
        cached.series()


@pytest.mark.parametrize("which", ["trades", "orders"])
def test_a_line_that_is_not_json_is_the_same_error_as_uncached(logs: Path, which: str) -> None:
    plain: TradeJournal | OrderJournal
    cached: CachedTradeJournal | CachedOrderJournal
    if which == "trades":
        plain, cached, read = TradeJournal(logs), CachedTradeJournal(logs), "read"
        good = [t.model_dump(mode="json") for t in series_of([10, 20])]
    else:
        plain, cached, read = OrderJournal(logs), CachedOrderJournal(logs), "read_events"
        good = [_event("a"), _event("b")]
    JsonlFile(plain.path).append_many(good)
    with plain.path.open("a") as f:
        f.write('{"v":1,\n')
    with pytest.raises(CorruptRecordError) as expected:
        getattr(plain, read)()
    with pytest.raises(CorruptRecordError) as got:
        getattr(cached, read)()
    assert str(got.value) == str(expected.value)
    assert f"{plain.path}:3" in str(got.value)


def test_a_repeated_trade_id_is_an_error_naming_both_lines(logs: Path) -> None:
    plain = TradeJournal(logs)
    first, other = trade(10, trade_id="T-dup"), trade(-5)
    _write(plain, [first, other])
    cached = CachedTradeJournal(logs)
    assert cached.has_trade("T-dup")
    JsonlFile(plain.path).append(trade(99, trade_id="T-dup").model_dump(mode="json"))
    with pytest.raises(CorruptRecordError) as err:
        cached.read()
    assert err.value.line == 3
    assert "trade_id 'T-dup' repeats line 1" in str(err.value)
    assert f"{plain.path}:3" in str(err.value)
    with pytest.raises(CorruptRecordError) as expected:  # the same words from either reader
        plain.read()
    assert str(err.value) == str(expected.value)
    with pytest.raises(CorruptRecordError):  # still reported: the duplicate is never taken
        cached.series()


def test_a_repeated_trade_id_in_one_batch_is_an_error_too(logs: Path) -> None:
    t = trade(10, trade_id="T-same")
    JsonlFile(TradeJournal(logs).path).append_many([t.model_dump(mode="json")] * 2)
    with pytest.raises(CorruptRecordError, match="'T-same' repeats line 1") as err:
        CachedTradeJournal(logs).read()
    assert err.value.line == 2


def test_append_never_writes_a_trade_id_twice(logs: Path) -> None:
    t = trade(10, trade_id="T-once")
    first, second = CachedTradeJournal(logs), CachedTradeJournal(logs)
    first.append(t)
    first.append(t)
    second.append(t)  # another instance (another process) that has not read the file yet
    TradeJournal(logs).append(trade(1, trade_id="T-other"))
    first.append(trade(1, trade_id="T-other"))  # written by someone else since the last read
    lines = JsonlFile(first.path).read().records
    assert [r["trade_id"] for r in lines] == ["T-once", "T-other"]
    assert [t.trade_id for t in second.read().trades] == ["T-once", "T-other"]
    assert first.has_trade("T-other") and not first.has_trade("T-never")


def test_append_writes_a_readable_trade(logs: Path) -> None:
    t = trade(-12)
    cached = CachedTradeJournal(logs)
    cached.append(t)
    assert TradeJournal(logs).read().trades == [t]
    assert cached.read().trades == [t]


def test_a_shortened_file_is_read_again(logs: Path) -> None:
    plain = TradeJournal(logs)
    trades = series_of([10, -5, 20])
    _write(plain, trades)
    cached = CachedTradeJournal(logs)
    cached.read()
    _replace_file(plain.path, [_trade_line(trades[2])])
    assert cached.read().trades == [trades[2]]
    assert cached.series()[0] == TradeSeries.of([trades[2]])


def test_a_replaced_file_as_long_as_before_is_read_again(logs: Path) -> None:
    plain = TradeJournal(logs)
    trades = series_of([10, -5])
    _write(plain, trades)
    cached = CachedTradeJournal(logs)
    cached.read()
    repaired = [trade(11, trade_id=trades[0].trade_id), trades[1], trade(30)]
    _replace_file(plain.path, [_trade_line(t) for t in repaired])
    assert plain.read().trades == repaired
    assert cached.read().trades == repaired


def test_both_ladders_refuse_a_journal_with_a_repeated_trade_id(loaded: LoadedConfig) -> None:
    t = trade(100, trade_id="T-dup")
    JsonlFile(TradeJournal(loaded.logs_dir).path).append_many([t.model_dump(mode="json")] * 2)
    assert PhaseLadder(loaded, cached=True).snapshot(NOW).error is not None
    assert PhaseLadder(loaded).snapshot(NOW).error is not None


# -- CachedOrderJournal ------------------------------------------------------------------------


def test_order_events_read_like_the_uncached_journal(logs: Path) -> None:
    plain, cached = OrderJournal(logs), CachedOrderJournal(logs)
    assert cached.read_events() == [] and cached.records() == []
    plain.append(_event("a"))
    plain.append(_event("a", event="status", status="submitted"))
    assert cached.read_events() == plain.read_events()
    plain.append(_event("b", session=TODAY - timedelta(days=1)))
    assert cached.read_events() == plain.read_events()
    assert len(cached.read_events()) == 3
    assert cached.records() == JsonlFile(plain.path).read().records


def test_session_events_equal_filtering_every_event(logs: Path) -> None:
    plain, cached = OrderJournal(logs), CachedOrderJournal(logs)
    days = [TODAY, TODAY - timedelta(days=1), TODAY, TODAY + timedelta(days=1), TODAY]
    for i, day in enumerate(days):
        plain.append(_event(f"r{i}", session=day))
        for d in set(days):
            assert cached.session_events(d) == [e for e in plain.read_events() if e.session == d]
            assert cached.session_events(d) == plain.session_events(d)
    assert len(cached.session_events(TODAY)) == 3
    assert cached.session_events(date(2020, 1, 2)) == []


def test_locked_session_events_read_through_the_writers_lock(logs: Path) -> None:
    plain, cached = OrderJournal(logs), CachedOrderJournal(logs)
    plain.append(_event("a"))
    assert len(cached.session_events(TODAY)) == 1
    with cached.file.locked() as locked:
        locked.append(_event("b"))
        locked.append(_event("c", session=TODAY - timedelta(days=1)))
        got = cached.locked_session_events(locked, TODAY)
        assert got == plain.locked_session_events(locked, TODAY)
        assert [e.order_ref for e in got] == ["a", "b"]
    assert [e.order_ref for e in cached.read_events()] == ["a", "b", "c"]  # nothing read twice


def test_a_bad_order_event_is_the_same_error_as_uncached_and_stays_reported(logs: Path) -> None:
    plain, cached = OrderJournal(logs), CachedOrderJournal(logs)
    plain.append(_event("a"))
    cached.read_events()
    bad = _event("b")
    del bad["role"]
    JsonlFile(plain.path).append_many([_event("c"), bad, _event("d")])
    with pytest.raises(CorruptRecordError) as expected:
        plain.read_events()
    for _ in range(2):
        with pytest.raises(CorruptRecordError) as got:
            cached.session_events(TODAY)
        assert str(got.value) == str(expected.value)
        assert got.value.line == 3
        assert "missing field role" in str(got.value)


def test_a_shortened_order_journal_is_read_again(logs: Path) -> None:
    plain = OrderJournal(logs)
    for ref in "abc":
        plain.append(_event(ref))
    cached = CachedOrderJournal(logs)
    assert len(cached.session_events(TODAY)) == 3
    lines = plain.path.read_text().splitlines()
    _replace_file(plain.path, lines[1:2])
    assert [e.order_ref for e in cached.session_events(TODAY)] == ["b"]
    assert cached.read_events() == plain.read_events()


def test_a_replaced_order_journal_as_long_as_before_is_read_again(logs: Path) -> None:
    plain = OrderJournal(logs)
    for ref in "ab":
        plain.append(_event(ref))
    cached = CachedOrderJournal(logs)
    cached.read_events()
    repaired = JsonlFile(plain.path.with_name("new.jsonl"))
    repaired.append_many([_event("x"), _event("y", session=TODAY - timedelta(days=1))])
    os.replace(repaired.path, plain.path)
    assert cached.read_events() == plain.read_events()
    assert [e.order_ref for e in cached.session_events(TODAY)] == ["x"]


def test_the_returned_session_list_is_the_callers_own(logs: Path) -> None:
    plain, cached = OrderJournal(logs), CachedOrderJournal(logs)
    plain.append(_event("a"))
    plain.append(_event("b", role="exit"))
    entries = cached.session_events(TODAY)
    entries[:] = [e for e in entries if e.role == "entry"]  # a caller keeping only entries
    assert cached.session_events(TODAY) == plain.session_events(TODAY)


_batches = st.lists(
    st.lists(
        st.tuples(st.integers(-2, 2), st.sampled_from(["intent", "status", "fill"])), max_size=5
    ),
    max_size=6,
)


@settings(max_examples=30, deadline=None)
@given(_batches)
def test_session_events_always_equal_filtering_read_events(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[tuple[int, str]]]
) -> None:
    logs = tmp_path_factory.mktemp("orders")
    plain, cached = OrderJournal(logs), CachedOrderJournal(logs)
    seen_days = {TODAY}
    for n, batch in enumerate(batches):
        days = [TODAY + timedelta(days=offset) for offset, _ in batch]
        seen_days.update(days)
        JsonlFile(plain.path).append_many(
            _event(f"r{n}-{i}", session=d, event=kind)
            for i, (d, (_, kind)) in enumerate(zip(days, batch, strict=True))
        )
        everything = plain.read_events()
        assert cached.read_events() == everything
        for d in seen_days:
            assert cached.session_events(d) == [e for e in everything if e.session == d]


# -- the phase ladder over the caches ----------------------------------------------------------


def _same_ladder_view(loaded: LoadedConfig, cached: PhaseLadder, now: datetime) -> None:
    fresh = PhaseLadder(loaded)
    assert cached.snapshot(now) == fresh.snapshot(now)
    for mode in ("paper", "live"):
        assert cached.check_entry(now, mode) == fresh.check_entry(now, mode)


def test_the_cached_ladder_sees_what_the_uncached_one_sees(loaded: LoadedConfig) -> None:
    journal, orders = TradeJournal(loaded.logs_dir), OrderJournal(loaded.logs_dir)
    cached = PhaseLadder(loaded, cached=True)
    _same_ladder_view(loaded, cached, NOW)  # empty journals
    _write(journal, series_of([100] * 20))
    _same_ladder_view(loaded, cached, NOW)
    snap = cached.snapshot(NOW)
    assert snap.evaluation is not None and snap.evaluation.eligible  # the files were followed
    PhaseLadder(loaded).advance(NOW - timedelta(days=5), to=None, operator="t", reason=None)
    _same_ladder_view(loaded, cached, NOW)
    orders.append(_event("tb-1"))  # proof's one entry of the session is used
    _same_ladder_view(loaded, cached, NOW)
    decision = cached.check_entry(NOW, "live")
    assert [r.rule for r in decision.refusals] == ["entry_limit"]
    orders.append(_event("tb-1", event="status", status="cancelled"))  # died without a fill
    _same_ladder_view(loaded, cached, NOW)
    assert cached.check_entry(NOW, "live").allowed
    _write(journal, series_of([-10, -10, -10], mode="live", start_day=60))
    _same_ladder_view(loaded, cached, NOW)
    assert [r.rule for r in cached.check_entry(NOW, "live").refusals] == ["downgrade_pending"]


def test_reserve_entry_on_the_cached_ladder_gives_proofs_one_entry_once(
    loaded: LoadedConfig,
) -> None:
    _write(TradeJournal(loaded.logs_dir), series_of([100] * 20))
    PhaseLadder(loaded).advance(NOW - timedelta(days=5), to=None, operator="t", reason=None)
    cached = PhaseLadder(loaded, cached=True)
    assert cached.check_entry(NOW, "live").allowed
    first = cached.reserve_entry(NOW, "live", _event("tb-1"))
    second = cached.reserve_entry(NOW, "live", _event("tb-2"))
    assert first.allowed and not second.allowed
    assert [r.rule for r in second.refusals] == ["entry_limit"]
    assert [e.order_ref for e in OrderJournal(loaded.logs_dir).read_events()] == ["tb-1"]
    _same_ladder_view(loaded, cached, NOW)


def test_the_cached_ladder_fails_safe_on_a_bad_line_like_the_uncached_one(
    loaded: LoadedConfig,
) -> None:
    journal = TradeJournal(loaded.logs_dir)
    _write(journal, series_of([100, -50]))
    cached = PhaseLadder(loaded, cached=True)
    _same_ladder_view(loaded, cached, NOW)
    with journal.path.open("a") as f:
        f.write('{"trade_id": "broken"}\n')
    _same_ladder_view(loaded, cached, NOW)
    snap = cached.snapshot(NOW)
    assert snap.evaluation is None and snap.error is not None and ":3:" in snap.error
    assert not cached.check_entry(NOW, "paper").allowed


def test_a_torn_last_trade_line_warns_in_both_ladders(loaded: LoadedConfig) -> None:
    journal = TradeJournal(loaded.logs_dir)
    _write(journal, series_of([100, -50]))
    with journal.path.open("a") as f:
        f.write('{"trade_id": "T-torn", "sym')  # the writer died mid-line
    plain = journal.read()
    assert len(plain.trades) == 2 and plain.warnings  # the uncached journal warns
    assert CachedTradeJournal(loaded.logs_dir).read().warnings == plain.warnings
    _same_ladder_view(loaded, PhaseLadder(loaded, cached=True), NOW)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([-40, -10, 0, 25, 100]), min_size=1, max_size=8),
        min_size=1,
        max_size=4,
    )
)
def test_cached_and_uncached_ladders_agree_after_any_appends(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]]
) -> None:
    loaded = load_config(tmp_path_factory.mktemp("ladder") / "config.toml")
    journal = TradeJournal(loaded.logs_dir)
    cached = PhaseLadder(loaded, cached=True)
    start = 0
    for pnls in batches:
        _write(journal, series_of(list(pnls), start_day=start, per_session=2))
        start += len(pnls)
        _same_ladder_view(loaded, cached, NOW)
