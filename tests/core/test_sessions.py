"""RTH filtering and session structure by the exchange calendar (XNYS)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from tests.core.data_loaders import NEW_YORK, dawsh2_spy, minute_frame, pratik_spy
from tests.core.data_loaders import synthetic_minutes as synthetic
from tradebot.core.sessions import (
    is_session,
    previous_sessions,
    rth_bars,
    rth_mask,
    session_at,
    session_labels,
    session_open_close,
    sessions_between,
)


def ny(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=NEW_YORK)


def test_synthetic_rth_keeps_full_session_and_honours_the_early_close() -> None:
    bars = rth_bars(synthetic())
    counts = bars.groupby("session").size()
    assert counts.to_dict() == {pd.Timestamp("2025-07-02"): 390, pd.Timestamp("2025-07-03"): 210}
    assert str(bars.index.tz) == "UTC"
    local = bars.index.tz_convert(NEW_YORK)
    day3 = local[bars["session"] == pd.Timestamp("2025-07-03")]
    assert (day3[0], day3[-1]) == (ny("2025-07-03 09:30"), ny("2025-07-03 12:59"))
    day2 = local[bars["session"] == pd.Timestamp("2025-07-02")]
    assert (day2[0], day2[-1]) == (ny("2025-07-02 09:30"), ny("2025-07-02 15:59"))
    # The after-close bad print (13:58, Low 431.00) is not RTH.
    assert bars["low"].min() > 480


def test_holiday_and_weekend_bars_are_not_rth() -> None:
    holiday = minute_frame(ny("2025-07-04 09:30"), np.full(5, 100.0))
    saturday = minute_frame(ny("2025-07-05 09:30"), np.full(5, 100.0))
    assert not rth_mask(holiday.index).any()
    assert not rth_mask(saturday.index).any()
    assert rth_bars(pd.concat([holiday, saturday])).empty


def test_session_bounds_early_close_and_dst() -> None:
    assert session_open_close(date(2025, 7, 3)) == (
        datetime(2025, 7, 3, 13, 30, tzinfo=UTC),
        datetime(2025, 7, 3, 17, 0, tzinfo=UTC),
    )
    # Winter: 09:30 New York is 14:30 UTC.
    assert session_open_close(date(2025, 1, 2))[0] == datetime(2025, 1, 2, 14, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a XNYS session"):
        session_open_close(date(2025, 7, 4))
    assert session_at(datetime(2025, 7, 3, 16, 59, 59, tzinfo=UTC)) == date(2025, 7, 3)
    assert session_at(datetime(2025, 7, 3, 17, 0, tzinfo=UTC)) is None
    assert session_at(datetime(2025, 7, 3, 13, 29, 59, tzinfo=UTC)) is None


def test_session_lists_skip_holidays_and_weekends() -> None:
    assert previous_sessions(date(2025, 7, 7), 3) == [
        date(2025, 7, 1),
        date(2025, 7, 2),
        date(2025, 7, 3),
    ]
    assert sessions_between(date(2025, 7, 3), date(2025, 7, 8)) == [
        date(2025, 7, 3),
        date(2025, 7, 7),
        date(2025, 7, 8),
    ]
    assert is_session(date(2025, 7, 3))
    assert not is_session(date(2025, 7, 4))


def test_labels_are_nat_outside_rth_and_naive_times_are_refused() -> None:
    index = pd.DatetimeIndex(
        [ny("2025-07-03 09:29"), ny("2025-07-03 09:30"), ny("2025-07-03 13:00")]
    )
    labels = session_labels(index)
    assert np.isnat(labels[0]) and np.isnat(labels[2])
    assert labels[1] == np.datetime64("2025-07-03")
    with pytest.raises(ValueError, match="timezone-aware"):
        session_labels(pd.DatetimeIndex(["2025-07-03 10:00"]))


def test_bar_frame_contract_is_checked() -> None:
    bars = minute_frame(ny("2025-07-02 10:00"), np.arange(3.0) + 100)
    with pytest.raises(ValueError, match="strictly increasing"):
        rth_bars(bars.iloc[::-1])
    with pytest.raises(ValueError, match="lack the column"):
        rth_bars(bars.rename(columns={"close": "Close"}))


@pytest.mark.shared_data
def test_real_spy_file_rth_structure() -> None:
    raw = pratik_spy()
    bars = rth_bars(raw)
    counts = bars.groupby("session").size()
    assert len(counts) == 21
    # 20 full sessions and the 2025-07-03 early close: 210 RTH bars, not the 390 in the file.
    assert counts[pd.Timestamp("2025-07-03")] == 210
    assert (counts.drop(pd.Timestamp("2025-07-03")) == 390).all()
    assert len(bars) == 20 * 390 + 210
    naive = raw.between_time("09:30", "15:59")
    assert len(naive) == 21 * 390  # what a naive 09:30–16:00 filter keeps
    # Bad prints after hours: present in the file, absent from RTH.
    assert raw.loc[ny("2025-07-03 13:58"), "low"] == pytest.approx(581.8076)
    assert raw.loc[ny("2025-07-21 17:11"), "low"] == pytest.approx(467.9705)
    assert bars["low"].min() > 600
    first = bars.index.tz_convert(NEW_YORK).to_series().groupby(bars["session"].to_numpy()).min()
    assert all(t.strftime("%H:%M") == "09:30" for t in first)
    # The 20:00 closing print is outside every session.
    assert not rth_mask(pd.DatetimeIndex([ny("2025-07-01 20:00")])).any()


@pytest.mark.shared_data
def test_utc_file_gives_the_same_sessions() -> None:
    bars = rth_bars(dawsh2_spy())
    counts = bars.groupby("session").size()
    assert counts.to_dict() == {pd.Timestamp("2025-04-24"): 390, pd.Timestamp("2025-04-25"): 390}
    assert bars.index[0] == pd.Timestamp("2025-04-24 13:30", tz="UTC")
