"""Real option quotes (`--options DIR`): the Lean minute quote zip and the CSV format, which
quote is in force when, and one clear error naming the file and row for every bad input."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import shared_data
from tests.core import data_loaders as dl
from tradebot.core.instruments import OptionContract
from tradebot.market.option_quotes import OptionQuotesError, load_option_quotes

C551 = OptionContract("SPY", date(2025, 7, 3), Decimal(551), "C")
P540 = OptionContract("SPY", date(2025, 7, 3), Decimal(540), "P")
MEMBER = "20250701_spy_minute_quote_american_{}_{}_20250703.csv"
HEADER = "time,contract,bid,ask\n"


def lean_zip(folder: Path, rows: dict[tuple[str, int], list[str]], day: str = "20250701") -> Path:
    """A Lean minute quote zip: member per (right word, strike × 10000), rows as given."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{day}_quote_american.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for (right, strike), lines in rows.items():
            name = MEMBER.format(right, strike).replace("20250701", day, 1)
            archive.writestr(name, "".join(line + "\n" for line in lines))
    return path


def csv_file(folder: Path, body: str, name: str = "quotes.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def _at(hh: int, mm: int, ss: int = 0) -> datetime:
    """A New York summer time (EDT) on 2025-07-01, in UTC."""
    return datetime(2025, 7, 1, hh + 4, mm, ss, tzinfo=UTC)


def test_a_lean_bar_is_the_quote_at_the_end_of_its_minute(tmp_path: Path) -> None:
    # 10:00 bar: bid closes 3.10, ask 3.50 (1/10000 $); 10:01: no ask (no quote); 10:02: no bid.
    lean_zip(
        tmp_path / "q",
        {
            ("call", 5_510_000): [
                "36000000,30000,31000,29000,31000,12,35000,36000,34000,35000,40",
                "36060000,31000,31000,31000,31000,5,,,,,0",
                "36120000,,,,,0,12000,12000,12000,12000,7",
            ]
        },
    )
    book = load_option_quotes(tmp_path / "q")
    assert book.at(C551, _at(10, 0, 59)) is None  # the 10:00 bar is not over yet
    quote = book.at(C551, _at(10, 1))
    assert quote is not None
    assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (
        Decimal("3.10"),
        Decimal("3.50"),
        12,
        40,
    )
    assert quote.time == _at(10, 1)
    assert book.at(C551, _at(10, 1, 59)) == quote  # in force for one minute
    assert book.at(C551, _at(10, 2)) is None  # the 10:01 bar had no ask: the model prices
    last = book.at(C551, _at(10, 3, 30))
    assert last is not None and (last.bid, last.ask, last.bid_size) == (
        Decimal(0),
        Decimal("1.20"),
        0,
    )
    assert book.at(C551, _at(10, 4)) is None  # a minute later: nothing in force
    assert book.at(P540, _at(10, 1)) is None  # another contract
    assert book.days("SPY") == {date(2025, 7, 1)} and book.count == 2


def test_a_csv_quote_is_in_force_from_its_time_for_a_minute(tmp_path: Path) -> None:
    csv_file(
        tmp_path / "q",
        "Time,Contract,Bid,Ask,Bid_Size,Ask_Size,venue\n"
        "2025-07-01 10:00:30,SPY250703C00551000,2.5,2.6,10,12,x\n"
        "2025-07-01 10:01:00,SPY   250703P00540000,0,0.05,,3,x\n"
        "2025-07-01 10:00:00,SPY250703C00551000,2.4,2.5,1,2,x\n",
    )
    book = load_option_quotes(tmp_path / "q")
    assert book.at(C551, _at(9, 59, 59)) is None
    first = book.at(C551, _at(10, 0, 10))
    assert first is not None and (first.bid, first.ask) == (Decimal("2.40"), Decimal("2.50"))
    second = book.at(C551, _at(10, 1, 29))
    assert second is not None and (second.bid, second.ask, second.bid_size) == (
        Decimal("2.50"),
        Decimal("2.60"),
        10,
    )
    assert book.at(C551, _at(10, 1, 30)) is None
    put = book.at(P540, _at(10, 1, 30))
    assert put is not None and put.bid == 0 and put.bid_size is None and put.ask_size == 3


def test_quotes_from_several_files_merge_by_contract(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    lean_zip(
        folder,
        {("call", 5_510_000): ["36000000,30000,30000,30000,30000,1,31000,31000,31000,31000,1"]},
    )
    csv_file(folder, HEADER + "2025-07-01 10:05:00,SPY250703C00551000,3.2,3.3\n")
    (folder / "README.txt").write_text("ignored")
    book = load_option_quotes(folder)
    assert book.count == 2 and len(book.series) == 1
    later = book.at(C551, _at(10, 5))
    assert later is not None and later.ask == Decimal("3.30")


T = "2025-07-01 10:00:00,"  # a row's time
C = "SPY250703C00551000"
CSV_PROBLEMS = [
    (f"{HEADER}{T}SPY250703X00551000,1,2\n", "row 2: contract 'SPY250703X00551000' is not"),
    (f"{HEADER}{T}SPY251303C00551000,1,2\n", "row 2: contract"),
    (f"{HEADER}{T}{C},1,2\n2025-07-01 10:01:00,{C},2,1\n", "row 3: bid '2' and ask '1' are"),
    (f"{HEADER}{T}{C},1,0\n", "row 2: bid '1' and ask '0'"),
    (f"{HEADER}{T}{C},x,2\n", "row 2: bid 'x' is not a price"),
    (f"{HEADER}{T}{C},1.00001,2\n", "row 2: bid '1.00001' is not a price"),
    (f"{HEADER}yesterday,{C},1,2\n", "row 2: a time cannot be read"),
    (f"time,contract,bid\n{T}{C},1\n", "missing column(s) ask"),
    (HEADER, "no rows"),
    (f"time,contract,bid,ask,bid_size\n{T}{C},1,2,1.5\n", "row 2: bid_size '1.5' is not a whole"),
    (
        f"{HEADER}{T}{C},1,2\n{T}{C},1,2\n",
        "row 3: SPY 2025-07-03 C 551 is quoted twice at 2025-07-01 10:00:00 New York (also",
    ),
]


@pytest.mark.parametrize(("body", "message"), CSV_PROBLEMS)
def test_a_bad_csv_names_the_file_and_row(tmp_path: Path, body: str, message: str) -> None:
    path = csv_file(tmp_path / "q", body)
    with pytest.raises(OptionQuotesError) as caught:
        load_option_quotes(tmp_path / "q")
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)
    assert caught.value.exit_code == 3


ROW = "36000000,1,1,1,1,1,2,2,2,2,1"  # a good Lean quote row
LEAN_PROBLEMS = [
    ({("call", 5_510_000): [ROW[:-2]]}, f"row 1: '{ROW[:-2]}' is not a Lean quote row"),
    ({("call", 5_510_000): [ROW, "x" + ROW[8:]]}, "row 2:"),
    ({("call", 5_510_000): [ROW.replace(",1,1,1,1,", ",1,1,1,3,", 1)]}, "row 1: bid 0.0003 and"),
    ({("call", 5_510_000): ["864" + ROW[3:]]}, "row 1: 86400000 ms is past midnight"),
]


@pytest.mark.parametrize(("rows", "message"), LEAN_PROBLEMS)
def test_a_bad_lean_zip_names_the_file_member_and_row(
    tmp_path: Path, rows: dict[tuple[str, int], list[str]], message: str
) -> None:
    path = lean_zip(tmp_path / "q", rows)
    with pytest.raises(OptionQuotesError) as caught:
        load_option_quotes(tmp_path / "q")
    member = MEMBER.format("call", 5_510_000)
    assert str(caught.value).startswith(f"{path}: {member}, ")
    assert message in str(caught.value)


def test_a_zip_that_is_not_lean_or_not_a_zip_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(OptionQuotesError, match=r"x\.zip: cannot be read as a zip file"):
        load_option_quotes(folder)
    with zipfile.ZipFile(folder / "x.zip", "w") as archive:
        archive.writestr("spy_quotes.csv", "1,2\n")
    with pytest.raises(OptionQuotesError, match=r"x\.zip: spy_quotes\.csv is not a Lean minute"):
        load_option_quotes(folder)


def test_a_folder_without_quotes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OptionQuotesError, match="no such directory"):
        load_option_quotes(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionQuotesError, match="no option quotes in it"):
        load_option_quotes(tmp_path / "empty")


@pytest.mark.shared_data
def test_the_real_lean_goog_chain(tmp_path: Path) -> None:
    """The GOOG 2015-12-23 chain (data.md: "At 10:00 the 750 C is 3.10/3.50"): 118 contracts,
    the 10:00 bar's close in force from 10:01."""
    folder = tmp_path / "goog"
    folder.mkdir()
    (folder / "20151223_quote_american.zip").write_bytes(
        shared_data(dl.LEAN_GOOG_QUOTES).read_bytes()
    )
    book = load_option_quotes(folder)
    assert len(book.series) == 118 and book.count == 25_962
    call = OptionContract("GOOG", date(2015, 12, 24), Decimal(750), "C")
    quote = book.at(call, datetime(2015, 12, 23, 15, 1, tzinfo=UTC))  # 10:01 New York
    assert quote is not None and (quote.bid, quote.ask) == (Decimal("3.10"), Decimal("3.50"))
    assert (
        book.at(call, datetime(2015, 12, 23, 15, 1, tzinfo=UTC) + timedelta(minutes=10)) is not None
    )
