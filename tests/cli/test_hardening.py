"""Hostile or careless input (issue 7): every case a named error with its exit code, no trace."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tests.factories import trade


# -- --csv targets ---------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["", " ", ".", "/", "somedir/"])
@pytest.mark.parametrize("command", [["journal"], ["phase", "export"]])
def test_csv_targets_that_cannot_be_a_file_are_usage_errors(
    command: list[str], target: str, tmp_path: Path
) -> None:
    (tmp_path / "somedir").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = invoke([*command, "--csv", target])
    assert result.exit_code == 2, result.stderr
    assert "--csv" in result.stderr or "directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing changed on disk


def test_csv_to_a_fifo_streams_through_it(journal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    journal(trade(50, trade_id="T1"))
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        result = invoke(["journal", "--csv", str(fifo)])
        assert result.exit_code == 0, result.stderr
        data = os.read(reader, 65536).decode()
    finally:
        os.close(reader)
    assert data.startswith("v,trade_id,") and ",T1," in data
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_csv_to_a_symlink_keeps_the_link(journal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    journal(trade(50, trade_id="T1"))
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    assert invoke(["phase", "export", "--csv", "link.csv"]).exit_code == 0
    assert (tmp_path / "link.csv").is_symlink()
    assert (tmp_path / "real.csv").read_text().startswith("timestamp,from_phase,")
