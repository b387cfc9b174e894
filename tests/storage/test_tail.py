"""`JsonlTail`: follow an append-only JSONL file, parsing only what was appended."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.errors import CorruptRecordError
from tradebot.storage import JsonlFile
from tradebot.storage.jsonl import CHUNK_LINES
from tradebot.storage.tail import JsonlTail

ROOT = Path(__file__).resolve().parents[2]


def _raw(path: Path, data: bytes) -> None:
    """Append bytes as they are (a writer mid-line, a hand edit)."""
    with path.open("ab") as f:
        f.write(data)


def _same_as_read(tail: JsonlTail) -> None:
    contents = JsonlFile(tail.path).read()
    assert tail.records == contents.records
    assert tail.line_numbers == contents.line_numbers


def test_missing_file_is_empty_and_is_picked_up_once_created(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    tail = JsonlTail(path)
    assert tail.refresh() == []
    assert tail.records == [] and tail.version == 0
    assert not path.exists()  # following never creates the file
    JsonlFile(path).append({"n": 1})
    assert tail.refresh() == [{"n": 1}]
    assert tail.line_numbers == [1]


def test_each_refresh_returns_only_the_appended_records(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "j.jsonl")
    tail = JsonlTail(store.path)
    store.append_many([{"n": 1}, {"n": 2}])
    assert tail.refresh() == [{"n": 1}, {"n": 2}]
    store.append({"n": 3})
    assert tail.refresh() == [{"n": 3}]
    assert tail.refresh() == []
    assert tail.records == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert tail.line_numbers == [1, 2, 3]
    _same_as_read(tail)


def test_version_moves_only_when_the_records_change(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "j.jsonl")
    tail = JsonlTail(store.path)
    store.append({"n": 1})
    tail.refresh()
    seen = tail.version
    tail.refresh()
    assert tail.version == seen  # nothing appended
    _raw(store.path, b'{"n":')
    tail.refresh()
    assert tail.version == seen  # only an unfinished line
    _raw(store.path, b"2}\n")
    tail.refresh()
    assert tail.version > seen


def test_a_line_still_being_written_is_consumed_only_once_complete(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    _raw(path, b'{"n":1}\n{"n":2,"note":"caf')
    tail = JsonlTail(path)
    assert tail.refresh() == [{"n": 1}]
    _raw(path, "é".encode()[:1])  # half of a two-byte character
    assert tail.refresh() == []
    _raw(path, "é".encode()[1:] + b'"}')
    # A whole JSON object missing only its newline is a record (the store's rule, issue 7):
    assert tail.refresh() == [{"n": 2, "note": "café"}]
    _raw(path, b"\n")  # the newline that an append adds first
    assert tail.refresh() == []
    assert tail.line_numbers == [1, 2]


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    _raw(path, b'{"n":1}\n\n')
    tail = JsonlTail(path)
    tail.refresh()
    _raw(path, b'   \n{"n":2}\n')
    assert tail.refresh() == [{"n": 2}]
    assert tail.line_numbers == [1, 4]
    _same_as_read(tail)


def test_a_torn_line_set_aside_by_the_next_append_is_never_taken(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "j.jsonl")
    store.append({"n": 1})
    tail = JsonlTail(store.path)
    _raw(store.path, b'{"n":2,"cut sho')  # the writer was killed mid-line
    assert tail.refresh() == [{"n": 1}]
    store.append({"n": 3})  # truncates the torn line away, then appends
    assert tail.refresh() == [{"n": 3}]
    assert tail.line_numbers == [1, 2]
    _same_as_read(tail)


def test_a_replaced_file_is_read_again_from_the_start(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "j.jsonl")
    store.append_many([{"n": 1}, {"n": 2}])
    tail = JsonlTail(store.path)
    tail.refresh()
    before = tail.version
    # A repaired copy, longer than what was read, moved into place (another inode).
    repaired = JsonlFile(tmp_path / "repaired.jsonl")
    repaired.append_many([{"n": 10}, {"n": 20}, {"n": 30}])
    os.replace(repaired.path, store.path)
    assert tail.refresh() == [{"n": 10}, {"n": 20}, {"n": 30}]
    assert tail.records == [{"n": 10}, {"n": 20}, {"n": 30}]
    assert tail.line_numbers == [1, 2, 3]
    assert tail.version > before


def test_a_shrunk_file_is_read_again_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    _raw(path, b'{"n":1}\n{"n":2}\n{"n":3}\n')
    tail = JsonlTail(path)
    tail.refresh()
    with path.open("r+b") as f:  # the same inode, cut short (a hand repair)
        f.truncate(0)
        f.write(b'{"n":7}\n')
    assert tail.refresh() == [{"n": 7}]
    assert tail.records == [{"n": 7}]
    _same_as_read(tail)


def test_a_deleted_file_empties_the_records(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "j.jsonl")
    store.append({"n": 1})
    tail = JsonlTail(store.path)
    tail.refresh()
    before = tail.version
    store.path.unlink()
    assert tail.refresh() == []
    assert tail.records == [] and tail.line_numbers == []
    assert tail.version > before
    store.append({"n": 2})
    assert tail.refresh() == [{"n": 2}]
    assert tail.line_numbers == [1]


def test_a_file_recreated_under_a_reused_inode_number_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"n":1}\n{"n":2}\n')
    tail = JsonlTail(path)
    tail.refresh()
    old_inode = path.stat().st_ino
    # `rm trades.jsonl; cp repaired trades.jsonl` between two ticks of the loop.
    # The repaired lines happen to end at the old offset, so nothing looks wrong: the tail
    # silently keeps n=1 and n=2 and appends n=30.
    path.unlink()
    for attempt in range(64):  # filesystems hand a freed inode number out again, soon
        candidate = tmp_path / f"repaired-{attempt}.jsonl"
        candidate.write_bytes(b'{"n":9}\n{"n":8}\n{"n":30}\n')
        if candidate.stat().st_ino == old_inode:
            os.replace(candidate, path)
            break
    else:
        pytest.skip("this filesystem did not reuse the inode number")
    tail.refresh()
    assert tail.records == [{"n": 9}, {"n": 8}, {"n": 30}]


def test_a_corrupt_line_names_file_and_line_and_is_reported_again(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    _raw(path, b'{"n":1}\n{"n":2}\n')
    tail = JsonlTail(path)
    tail.refresh()
    _raw(path, b'{"n":3}\nnot json\n{"n":5}\n')
    for _ in range(2):  # the offset does not move past the bad line
        with pytest.raises(CorruptRecordError) as err:
            tail.refresh()
        assert err.value.line == 4
        assert f"{path}:4" in str(err.value)
    # Nothing of the bad batch was taken, not even the good line before it.
    assert tail.records == [{"n": 1}, {"n": 2}]
    assert tail.line_numbers == [1, 2]


def test_a_repaired_corrupt_line_is_read_after_the_repair(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    _raw(path, b'{"n":1}\n[1,2]\n')
    tail = JsonlTail(path)
    with pytest.raises(CorruptRecordError, match="not a JSON object"):
        tail.refresh()
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_bytes(b'{"n":1}\n{"n":2}\n')
    os.replace(fixed, path)
    assert tail.refresh() == [{"n": 1}, {"n": 2}]


def test_invalid_utf8_is_a_corrupt_line_named_by_number(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    _raw(path, b'{"n":1}\n{"n":"\xff\xfe"}\n{"n":3}\n')
    with pytest.raises(CorruptRecordError) as err:
        JsonlTail(path).refresh()
    assert err.value.line == 2


def test_line_numbers_past_a_chunk_boundary(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    tail = JsonlTail(path)
    _raw(path, b'{"n":0}\n')
    tail.refresh()
    count = CHUNK_LINES + 500
    _raw(path, b"".join(b'{"n":%d}\n' % i for i in range(1, count + 1)))
    assert len(tail.refresh()) == count
    assert tail.line_numbers[-1] == count + 1
    _same_as_read(tail)
    bad_at = count + 1 + CHUNK_LINES + 7  # in the second chunk of the next batch
    _raw(path, b"".join(b'{"n":%d}\n' % i for i in range(count + 2, bad_at)))
    _raw(path, b'{"n":}\n')
    with pytest.raises(CorruptRecordError) as err:
        tail.refresh()
    assert err.value.line == bad_at
    assert len(tail.records) == count + 1


def test_refresh_locked_reads_through_the_writers_exclusive_lock(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "j.jsonl")
    store.append({"n": 1})
    tail = JsonlTail(store.path)
    tail.refresh()
    with store.locked() as locked:
        assert tail.refresh_locked(locked) == []
        locked.append({"n": 2})
        assert tail.refresh_locked(locked) == [{"n": 2}]
        assert locked.read().records == tail.records
    assert tail.refresh() == []  # nothing read twice
    assert tail.line_numbers == [1, 2]


def test_refresh_locked_on_a_new_file(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "sub" / "j.jsonl")
    tail = JsonlTail(store.path)
    with store.locked() as locked:
        assert tail.refresh_locked(locked) == []
        locked.append_many([{"n": 1}, {"n": 2}])
        assert tail.refresh_locked(locked) == [{"n": 1}, {"n": 2}]


_APPENDER = """
import sys
from pathlib import Path
from tradebot.storage import JsonlFile
store = JsonlFile(Path(sys.argv[1]))
for i in range(int(sys.argv[2]), int(sys.argv[3])):
    store.append({"writer": "child", "seq": i})
"""


def _appender(path: Path, start: int, stop: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(path), str(start), str(stop)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_another_process_appending_is_seen_on_refresh(tmp_path: Path) -> None:
    store = JsonlFile(tmp_path / "j.jsonl")
    store.append({"writer": "parent", "seq": -1})
    tail = JsonlTail(store.path)
    tail.refresh()
    proc = _appender(store.path, 0, 50)
    assert proc.wait(timeout=60) == 0
    new = tail.refresh()
    assert [r["seq"] for r in new] == list(range(50))
    assert tail.records[0] == {"writer": "parent", "seq": -1}
    _same_as_read(tail)


def test_refreshing_while_another_process_appends_sees_a_growing_prefix(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    tail = JsonlTail(path)
    proc = _appender(path, 0, 300)
    snapshots = []
    while proc.poll() is None:
        tail.refresh()
        snapshots.append(len(tail.records))
    assert proc.wait(timeout=60) == 0
    tail.refresh()
    assert [r["seq"] for r in tail.records] == list(range(300))  # every line, once, in order
    assert snapshots == sorted(snapshots)
    _same_as_read(tail)


# -- the invariant: the tail always equals a full read --------------------------------------

_records = st.lists(
    st.fixed_dictionaries(
        {"n": st.integers(-(10**6), 10**6), "s": st.text(max_size=8)},
    ),
    max_size=4,
)
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), _records),
        st.tuples(st.just("after_crash"), _records),
        st.tuples(st.just("partial"), st.integers(1, 12)),
        st.tuples(st.just("blank"), st.none()),
        st.tuples(st.just("refresh"), st.none()),
        st.tuples(st.just("replace"), _records),
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(_steps)
def test_the_tail_always_equals_a_full_read(steps: list[tuple[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.jsonl"
        store = JsonlFile(path)
        tail = JsonlTail(path)
        pending = b""  # an unfinished line written so far
        replaced = 0
        for kind, arg in steps:
            if kind == "append":
                if pending:  # the writer finishes its line first
                    _raw(path, b"}\n")
                    pending = b""
                store.append_many(arg)
            elif kind == "after_crash":
                # The writer died mid-line; the next append (at least one record: an empty
                # append writes nothing) sets the torn line aside.
                store.append_many(arg or [{"after": "crash"}])
                pending = b""
            elif kind == "partial" and not pending:
                pending = b'{"partial":"' + b"p" * arg + b'"'
                _raw(path, pending)
            elif kind == "blank" and not pending:
                _raw(path, b"\n")
            elif kind == "replace":
                # A repair that keeps a backup: every file stays on disk, so no inode number is
                # reused (see test_a_file_recreated_under_a_reused_inode_number_is_read_again).
                replaced += 1
                fresh = JsonlFile(Path(tmp) / "fresh.jsonl")
                fresh.append_many(arg)  # creates the file even when empty
                if path.exists():
                    os.rename(path, Path(tmp) / f"backup-{replaced}.jsonl")
                os.replace(fresh.path, path)
                pending = b""
            if kind == "refresh":
                tail.refresh()
                _same_as_read(tail)
        tail.refresh()
        _same_as_read(tail)
