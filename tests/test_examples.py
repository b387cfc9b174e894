"""The shipped example stays true: valid config, readable journal, the commands it names work."""

from __future__ import annotations

import json
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
