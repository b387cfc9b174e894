"""The append-only JSONL store: round trips, torn tails, corrupt lines, locking."""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tradebot.errors import CorruptRecordError, storage_error
from tradebot.storage import JsonlFile


def test_missing_file_reads_empty(tmp_path: Path) -> None:
    contents = JsonlFile(tmp_path / "none.jsonl").read()
    assert contents.records == []
    assert not (tmp_path / "none.jsonl").exists()  # reading never creates the file


def test_round_trip_keeps_decimals_and_utc(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "j" / "a.jsonl")
    when = datetime(2025, 7, 1, 13, 30, tzinfo=UTC)
    store.append({"v": 1, "pnl": Decimal("-12.30"), "ts": when, "note": "line\nbreak"})
    store.append_many([{"v": 1, "n": 2}, {"v": 1, "n": 3}])
    raw = (tmp_path / "j" / "a.jsonl").read_text()
    assert raw.count("\n") == 3  # one object per line, a newline inside a string is escaped
    assert '"pnl":"-12.30"' in raw  # money as a decimal string
    assert '"ts":"2025-07-01T13:30:00Z"' in raw
    contents = store.read()
    assert contents.records[0]["pnl"] == "-12.30"
    assert contents.records[0]["note"] == "line\nbreak"
    assert [r.get("n") for r in contents.records] == [None, 2, 3]
    assert contents.line_numbers == [1, 2, 3]


def test_naive_datetime_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="naive"):
        JsonlFile(tmp_path / "a.jsonl").append({"v": 1, "ts": datetime(2025, 1, 1)})


def test_torn_last_line_is_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"v":1,"n":1}\n{"v":1,"n":2}\n{"v":1,"n"')
    with caplog.at_level(logging.WARNING):
        contents = JsonlFile(path).read()
    assert [r["n"] for r in contents.records] == [1, 2]
    assert contents.torn_tail
    assert "a.jsonl:3" in contents.warnings[0]
    assert "torn last line" in caplog.text


def test_append_after_torn_tail_sets_it_aside(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"v":1,"n":1}\n{"v":1,"n":2')
    JsonlFile(path).append({"v": 1, "n": 3})
    contents = JsonlFile(path).read()
    assert [r["n"] for r in contents.records] == [1, 3]
    assert not contents.torn_tail
    assert (tmp_path / "a.jsonl.torn").read_bytes() == b'{"v":1,"n":2\n'


def test_torn_tail_without_any_newline(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"v":1,"n')
    assert JsonlFile(path).read().records == []
    JsonlFile(path).append({"v": 1, "n": 1})
    assert path.read_bytes() == b'{"v":1,"n":1}\n'


def test_corrupt_middle_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"v":1}\n{"v":1}\nnot json\n{"v":1}\n')
    with pytest.raises(CorruptRecordError) as err:
        JsonlFile(path).read()
    assert err.value.line == 3
    assert f"{path}:3" in str(err.value)


def test_non_object_line_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"v":1}\n[1,2]\n')
    with pytest.raises(CorruptRecordError, match=r"a.jsonl:2: not a JSON object"):
        JsonlFile(path).read()


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"v":1,"n":1}\n\n{"v":1,"n":2}\n')
    contents = JsonlFile(path).read()
    assert [r["n"] for r in contents.records] == [1, 2]
    assert contents.line_numbers == [1, 3]


def test_locked_read_then_append(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "a.jsonl")
    store.append({"v": 1, "n": 1})
    with store.locked() as locked:
        assert len(locked.read().records) == 1
        locked.append({"v": 1, "n": 2})
        assert len(locked.read().records) == 2
    assert len(store.read().records) == 2


def test_line_numbers_are_exact_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    lines = [f'{{"v":1,"n":{i}}}' for i in range(1, 2501)]
    lines[1499] = ""  # a blank line inside the second chunk
    path.write_text("\n".join(lines) + "\n")
    contents = JsonlFile(path).read()
    assert len(contents.records) == 2499
    assert contents.line_numbers[1498:1501] == [1499, 1501, 1502]
    assert all(r["n"] == n for r, n in zip(contents.records, contents.line_numbers, strict=True))
    lines[2099] = '{"v":1,"n":2100},{"v":1}'  # two objects on one line, in the third chunk
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorruptRecordError) as err:
        JsonlFile(path).read()
    assert err.value.line == 2100


def test_iter_chunks_streams_the_same_records(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "a.jsonl")
    store.append_many({"v": 1, "n": i} for i in range(2345))
    with store.locked() as locked:
        locked.append({"v": 1, "n": 2345})
    streamed = [r["n"] for chunk, _ in store.iter_chunks() for r in chunk]
    assert streamed == list(range(2346))
    assert [len(chunk) for chunk, _ in store.iter_chunks()] == [1000, 1000, 346]


def test_two_objects_on_a_line_with_another_split_across_lines_is_caught(tmp_path: Path) -> None:
    """The joined-array fast path must not be fooled when the object count still adds up."""
    path = tmp_path / "a.jsonl"
    path.write_text('{"v":1,"a":1},{"v":1,"b":2}\n{"v":1,"c":[{"x":1}\n{"y":2}]}\n')
    with pytest.raises(CorruptRecordError) as err:
        JsonlFile(path).read()
    assert err.value.line == 1


def test_a_brace_after_a_comma_inside_a_string_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"v":1,"note":"a, {b}"}\n{"v":1,"items":[{"x":1},{"x":2}]}\n')
    contents = JsonlFile(path).read()
    assert contents.records[0]["note"] == "a, {b}"
    assert contents.line_numbers == [1, 2]


# -- issue 7: a last line missing only its newline, odd paths, failed appends ------------------
def test_a_complete_last_line_without_newline_is_a_record_and_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"v":1,"n":1}\n{"v":1,"n":2,"trigger":"auto_downgrade"}')
    contents = JsonlFile(path).read()
    assert [r["n"] for r in contents.records] == [1, 2]
    assert not contents.torn_tail and contents.warnings == []
    assert [r["n"] for chunk, _ in JsonlFile(path).iter_chunks() for r in chunk] == [1, 2]
    JsonlFile(path).append({"v": 1, "n": 3})
    assert [r["n"] for r in JsonlFile(path).read().records] == [1, 2, 3]
    assert not (tmp_path / "a.jsonl.torn").exists()  # terminated, never moved aside
    assert path.read_bytes().count(b"\n") == 3


def test_a_torn_line_that_is_not_a_whole_object_is_still_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"v":1,"n":1}\n{"v":1,"n":2}\n{"v":1,"a":{"b":1}')  # missing the last }
    assert JsonlFile(path).read().torn_tail
    JsonlFile(path).append({"v": 1, "n": 3})
    assert (tmp_path / "a.jsonl.torn").read_bytes() == b'{"v":1,"a":{"b":1}\n'


@pytest.mark.parametrize(
    "line",
    [b"[" * 50_000 + b"]" * 50_000, b'{"v":1,"x":NaN}', b'{"v":1,"x":-Infinity}', b"\xff\xfe{}"],
)
def test_hostile_json_lines_are_named_errors(tmp_path: Path, line: bytes) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"v":1}\n' + line + b'\n{"v":1}\n')
    with pytest.raises(CorruptRecordError) as err:
        JsonlFile(path).read()
    assert err.value.line == 2


def test_a_journal_path_that_is_a_directory_or_a_fifo_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    os.mkfifo(tmp_path / "fifo.jsonl")
    for name, kind in (("dir.jsonl", "directory"), ("fifo.jsonl", "FIFO")):
        store = JsonlFile(tmp_path / name)
        with pytest.raises(CorruptRecordError, match=f"{name}: is a {kind}, not a regular file"):
            store.read()  # never blocks on the FIFO
        with pytest.raises(CorruptRecordError, match=f"is a {kind}"), store.locked():
            pass


def test_new_journals_are_0600_in_0700_directories_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        JsonlFile(tmp_path / "logs" / "journal" / "trades.jsonl").append({"v": 1})
        (tmp_path / "x.jsonl").write_bytes(b'{"v":1}\n{"v":1')
        JsonlFile(tmp_path / "x.jsonl").append({"v": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "logs" / "journal").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "logs" / "journal" / "trades.jsonl").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "x.jsonl.torn").st_mode) == 0o600


def test_an_append_cut_short_by_the_kernel_leaves_no_partial_line(tmp_path: Path) -> None:
    """A real process whose file-size limit stops the write half way (like a full disk)."""
    path = tmp_path / "trades.jsonl"
    JsonlFile(path).append({"v": 1, "n": 1})
    before = path.read_bytes()
    script = (
        "import resource, signal, sys\n"
        "from tradebot.storage import JsonlFile\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) + 100}, -1))\n"
        "try:\n"
        f"    JsonlFile({str(path)!r}).append({{'v': 1, 'pad': 'x' * 10000}})\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__, exc.errno, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])),
        timeout=60,
    )
    assert result.stdout.startswith(f"StorageError {errno.EFBIG} cannot append to {path}")
    assert path.read_bytes() == before  # cut back: no partial line


@pytest.mark.parametrize(
    ("code", "what", "todo"),
    [
        (errno.ENOSPC, "disk full", "free some space on that disk"),
        (errno.EDQUOT, "disk full", "free some space on that disk"),
        (errno.EIO, "I/O error", "check the system log"),
        (errno.EACCES, "permission denied", "run tradebot as the user that owns"),
        (errno.EROFS, "read-only", "writable disk"),
    ],
)
def test_write_failures_say_what_happened_and_what_to_do(code: int, what: str, todo: str) -> None:
    err = storage_error(Path("/x/logs/journal/trades.jsonl"), OSError(code, os.strerror(code)))
    assert isinstance(err, OSError) and err.errno == code
    assert what in err.message and todo in err.message and "trades.jsonl" in err.message
