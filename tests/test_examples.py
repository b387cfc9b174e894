"""The shipped example stays true: valid config, readable journal, the commands it names work."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample" / "config.toml"


def test_sample_config_and_journal() -> None:
    assert invoke(["--config", str(SAMPLE), "config", "check"]).exit_code == 0
    doc = json.loads(invoke(["--config", str(SAMPLE), "journal", "--json"]).stdout)
    assert doc["summary"]["trades"] == 60
    assert doc["warnings"] == []


def test_sample_phase_status_is_eligible_and_risk_check_runs() -> None:
    status = json.loads(invoke(["--config", str(SAMPLE), "phase", "status", "--json"]).stdout)
    assert status["phase"] == "experience" and status["eligible"] is True
    risk = invoke(
        [
            "--config",
            str(SAMPLE),
            "risk",
            "check",
            "--premium",
            "0.45",
            "--at",
            "2025-09-02T15:00:00Z",
        ]
    )
    assert risk.exit_code == 0, risk.stdout


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts examples/tradebot.service (skips without systemd)."""
    import shutil
    import subprocess
    import sys

    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = (ROOT / "examples" / "tradebot.service").read_text(encoding="utf-8")
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "NoNewPrivileges=yes" in unit
    assert "ProtectSystem=strict" in unit and "ReadWritePaths=" in unit
    assert "Restart=on-failure" in unit and "EnvironmentFile=" in unit
    assert "://" not in unit.replace("file:///", "")  # no notify URL (a secret) inline
    executable = Path(sys.executable).with_name("tradebot")
    local = tmp_path / "tradebot.service"
    local.write_text(unit.replace("/home/tradebot/tradebot/.venv/bin/tradebot", str(executable)))
    done = subprocess.run([tool, "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def test_the_example_config_trades_over_a_session_and_journal_shows_the_trades(
    tmp_path: Path,
) -> None:
    """The repository's config.toml, as a new user runs it: `tradebot run --start 2025-07-01`
    trades on the simulated broker's account (paper), closes trades, and `journal` shows
    them; `phase status` says they do not count toward experience (counted_modes = paper)."""
    config = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", config)
    ran = invoke(["--config", str(config), "run", "--start", "2025-07-01"])
    assert ran.exit_code == 0, ran.stderr
    said = " ".join(ran.stdout.split())
    match = re.search(r"(\d+) entr(?:y|ies) sent, (\d+) trade\(s\) closed", said)
    assert match and int(match[1]) > 0 and int(match[2]) > 0, ran.stdout
    closed = int(match[2])
    journal = invoke(["--config", str(config), "journal", "--limit", "0"])
    assert journal.exit_code == 0
    assert "No closed trades" not in journal.stdout
    ids = re.findall(r"\b(?:SPY|QQQ)-250701-s\d+\b", journal.stdout)
    assert len(set(ids)) == closed
    status = invoke(["--config", str(config), "phase", "status"])
    said = " ".join(status.stdout.split())
    assert f"{closed} sim trade(s): counted_modes = paper" in said
    doc = json.loads(invoke(["--config", str(config), "phase", "status", "--json"]).stdout)
    assert doc["not_counted"] == {"sim": closed}
    # The orders went to the simulated broker: sent, filled, never `not_sent`.
    orders = (tmp_path / "logs" / "journal" / "orders.jsonl").read_text().splitlines()
    assert any('"event":"fill"' in line for line in orders)
    assert not any('"status":"not_sent"' in line for line in orders)
