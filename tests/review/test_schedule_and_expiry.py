"""When positions are opened and closed around the close: the scalp flatten and the entry
window, and options held into their expiry."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tests.engine.harness import config, entry_intents, trades, ts
from tests.review.helpers import HOLD, positions, prepare, run_loop, trading
from tradebot.engine.schedule import session_plan
from tradebot.errors import ConfigError

DAY = date(2025, 7, 1)


def test_no_scalp_entry_opens_after_the_flatten_time(tmp_path: Path) -> None:
    loaded = config(
        tmp_path, HOLD, base=trading("flatten_minutes_before_close = 40\ninterval_s = 60")
    )
    ctx, until = prepare(loaded, "2025-07-01T15:00", "2025-07-01T16:00")
    run_loop(ctx, until)
    s = loaded.settings
    plan = session_plan(
        DAY,
        s.schedule.calendar,
        interval_s=s.trading.interval_s,
        open_delay_minutes=s.schedule.open_delay_minutes,
        close_buffer_minutes=s.schedule.close_buffer_minutes,
        flatten_minutes=s.trading.flatten_minutes_before_close,
    )
    scalp = [r for r in entry_intents(loaded) if r["strategy"] == "scalp"]
    late = [r["order_ref"] for r in scalp if ts(r) >= plan.flatten_at]
    assert late == []


def test_zero_flatten_minutes_is_refused_or_still_flattens_scalp_positions(
    tmp_path: Path,
) -> None:
    try:
        loaded = config(tmp_path, HOLD, base=trading("flatten_minutes_before_close = 0"))
    except ConfigError:
        return  # refusing the setting is a fix too
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02")
    run_loop(ctx, until)
    assert [r for r in entry_intents(loaded) if r["strategy"] == "scalp"]
    assert positions(ctx) == {}  # no scalp position left open over the close


WHALE_ONLY = (
    "[strategies.scalp]\nenabled = false\n"
    "[strategies.whale]\nrange_days = 2\nvolume_multiple = 0.5\ndebounce_days = 0\n"
)


def test_no_option_is_held_in_the_money_into_its_expiry_close(tmp_path: Path) -> None:
    loaded = config(tmp_path, HOLD + WHALE_ONLY, base=trading("", '"QQQ"'))
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-03")
    run_loop(ctx, until)
    whale = [t for t in trades(loaded) if t.strategy == "whale"]
    assert whale, "the scenario needs whale trades"
    exercised = [t.trade_id for t in whale if t.exit_reason == "expired" and t.exit_price > 0]
    assert exercised == []
