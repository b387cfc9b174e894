"""Atomic state files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tradebot.errors import CorruptRecordError, StorageError
from tradebot.storage import read_json_state, state_lock, write_atomic, write_json_state

WRITER = Path(__file__).with_name("writer_process.py")
ROOT = Path(__file__).resolve().parents[2]


def test_round_trip_and_permissions(tmp_path: Path) -> None:
    path = tmp_path / "state" / "halt.json"
    write_json_state(path, {"v": 1, "equity": Decimal("10000.50")})
    assert read_json_state(path) == {"v": 1, "equity": "10000.50"}
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["halt.json"]  # no temp file left


def test_replace_keeps_whole_new_content(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_atomic(path, b"old")
    write_atomic(path, b"new content")
    assert path.read_bytes() == b"new content"


def test_missing_state_is_none(tmp_path: Path) -> None:
    assert read_json_state(tmp_path / "absent.json") is None


def test_corrupt_state_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{half")
    with pytest.raises(CorruptRecordError, match=r"s\.json: not valid JSON"):
        read_json_state(path)


def test_state_lock_is_reentrant_across_files(tmp_path: Path) -> None:
    with state_lock(tmp_path / "a.json"), state_lock(tmp_path / "b.json"):
        write_json_state(tmp_path / "a.json", {"v": 1})
    assert (tmp_path / "a.json.lock").exists()


# -- special targets: written through, never replaced ------------------------------------------
def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer's open succeeds
    try:
        write_atomic(fifo, b"a,b\n1,2\n", write_through_special=True)
        assert os.read(reader, 1024) == b"a,b\n1,2\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temp file either


def test_a_symlink_is_written_through_and_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old, longer than the new content\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_atomic(link, b"new\n", write_through_special=True)
    assert link.is_symlink() and real.read_bytes() == b"new\n"


def test_a_character_device_is_written_through_and_stays_a_device(tmp_path: Path) -> None:
    null = tmp_path / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the /dev/null device
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    write_atomic(null, b"discarded\n", write_through_special=True)
    assert stat.S_ISCHR(os.lstat(null).st_mode)


def test_state_over_a_special_file_is_refused_and_the_file_kept(tmp_path: Path) -> None:
    fifo = tmp_path / "halt.json"
    os.mkfifo(fifo)
    with pytest.raises(StorageError, match=r"halt\.json is a FIFO, not a regular file"):
        write_json_state(fifo, {"v": 1})
    link = tmp_path / "equity.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(StorageError, match="symlink"):
        write_json_state(link, {"v": 1})
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink()
    assert not (tmp_path / "elsewhere.json").exists()


def test_a_directory_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for target in (tmp_path / "d", Path(".")):
        with pytest.raises(StorageError, match="is a directory"):
            write_atomic(target, b"x")


# -- temp files: unpredictable, exclusive, no-follow; private modes -----------------------------
def test_a_planted_symlink_at_the_old_temp_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    state = tmp_path / "state"
    state.mkdir()
    planted = state / f".halt.json.{os.getpid()}.tmp"  # the name earlier versions used
    planted.symlink_to(victim)
    write_json_state(state / "halt.json", {"v": 1, "halted": False})
    assert victim.read_text() == "precious"
    assert planted.is_symlink()  # not ours: left alone, not followed, not removed
    assert read_json_state(state / "halt.json") == {"v": 1, "halted": False}


def test_directories_0700_and_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "logs" / "state" / "halt.json"
        write_json_state(path, {"v": 1})
        with state_lock(tmp_path / "logs" / "state2" / "x.json"):
            pass
    finally:
        os.umask(old)
    for directory in (tmp_path / "logs", tmp_path / "logs" / "state", tmp_path / "logs" / "state2"):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700, directory
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "logs" / "state2" / "x.json.lock").st_mode) == 0o600


def test_a_file_where_the_directory_should_be_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    with pytest.raises(StorageError, match=r"[Nn]ot a directory"):
        write_json_state(tmp_path / "state" / "halt.json", {"v": 1})


def test_unreadable_or_odd_state_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(CorruptRecordError, match=r"dir\.json: is a directory, not a regular file"):
        read_json_state(tmp_path / "dir.json")
    os.mkfifo(tmp_path / "fifo.json")  # must not block waiting for a writer
    with pytest.raises(CorruptRecordError, match="is a FIFO"):
        read_json_state(tmp_path / "fifo.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CorruptRecordError, match="nested too deeply"):
        read_json_state(tmp_path / "deep.json")
    (tmp_path / "nan.json").write_text('{"v": 1, "equity": NaN}')
    with pytest.raises(CorruptRecordError, match="not valid JSON"):
        read_json_state(tmp_path / "nan.json")


# -- a writer killed before its rename leaves nothing behind -------------------------------------
def _hold_temp(path: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), "hold-temp", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "state" / "halt.json"
    proc, tmp = _hold_temp(path)
    try:
        assert tmp.parent == path.parent and tmp.exists()
        assert tmp.name.startswith(".halt.json.") and tmp.name.endswith(".tmp")
        write_json_state(path, {"v": 1, "n": 1})
        assert tmp.exists()  # its writer is alive: its temp file is not touched
    finally:
        proc.kill()
        proc.communicate()
    write_json_state(path, {"v": 1, "n": 2})
    assert sorted(p.name for p in path.parent.iterdir()) == ["halt.json"]
    assert read_json_state(path) == {"v": 1, "n": 2}


# -- the temp name: random per write; a planted entry at a chosen name is skipped, never used ------
class _Names:
    """Stands in for tempfile's random name source (`tempfile._name_sequence`): yields `names`
    in turn (cycling) and records what it gave, so the writer's name choice is reachable."""

    def __init__(self, names: list[str]) -> None:
        self.names, self.given = names, []  # type: list[str], list[str]

    def __iter__(self) -> _Names:
        return self

    def __next__(self) -> str:
        name = self.names[len(self.given) % len(self.names)]
        self.given.append(name)
        return name


class _Recording:
    """Wraps the real random source and records each name it gives."""

    def __init__(self, real: object) -> None:
        self.real, self.given = real, []  # type: object, list[str]

    def __iter__(self) -> _Recording:
        return self

    def __next__(self) -> str:
        name: str = next(self.real)  # type: ignore[call-overload]
        self.given.append(name)
        return name


def test_two_writes_use_different_unpredictable_temp_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    source = _Recording(tempfile._get_candidate_names())  # type: ignore[attr-defined]
    monkeypatch.setattr(tempfile, "_name_sequence", source)
    write_json_state(tmp_path / "halt.json", {"v": 1, "n": 1})
    write_json_state(tmp_path / "halt.json", {"v": 1, "n": 2})
    assert len(source.given) == 2 and source.given[0] != source.given[1]  # same pid, two names
    assert all(len(n) == 8 and str(os.getpid()) not in n for n in source.given)


def test_a_planted_entry_at_the_chosen_temp_name_is_skipped_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    victim = tmp_path / "victim"
    victim.write_text("precious")
    state = tmp_path / "state"
    state.mkdir()
    link = state / ".halt.json.aaaaaaaa.tmp"
    link.symlink_to(victim)
    other = state / ".halt.json.bbbbbbbb.tmp"  # another user's file (not ours to clean up)
    other.write_text("someone else's")
    os.chown(other, 65534, 65534)
    names = _Names(["aaaaaaaa", "bbbbbbbb", "cccccccc"])
    monkeypatch.setattr(tempfile, "_name_sequence", names)
    write_json_state(state / "halt.json", {"v": 1, "halted": False})
    assert names.given == ["aaaaaaaa", "bbbbbbbb", "cccccccc"]  # both taken names were skipped
    assert victim.read_text() == "precious" and link.is_symlink()
    assert other.read_text() == "someone else's"
    assert read_json_state(state / "halt.json") == {"v": 1, "halted": False}
    assert not (state / ".halt.json.cccccccc.tmp").exists()  # renamed over the target


def test_when_every_temp_name_is_planted_the_write_fails_and_follows_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    state = tmp_path / "state"
    state.mkdir()
    (state / "halt.json").write_text('{"v": 1, "halted": true}\n')
    victims = []
    for name in ("aaaaaaaa", "bbbbbbbb", "cccccccc"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious")
        (state / f".halt.json.{name}.tmp").symlink_to(victim)
        victims.append(victim)
    monkeypatch.setattr(tempfile, "_name_sequence", _Names(["aaaaaaaa", "bbbbbbbb", "cccccccc"]))
    monkeypatch.setattr(tempfile, "TMP_MAX", 30)  # a small name space, tried ten times over
    with pytest.raises(StorageError, match=r"cannot write .*halt\.json"):
        write_json_state(state / "halt.json", {"v": 1, "halted": False})
    assert all(v.read_text() == "precious" for v in victims)
    assert all((state / f".halt.json.{n}.tmp").is_symlink() for n in ("aaaaaaaa", "bbbbbbbb"))
    assert read_json_state(state / "halt.json") == {"v": 1, "halted": True}  # old file kept
