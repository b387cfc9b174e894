"""The shipped example stays true: valid config, readable journal, the commands it names work."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import invoke

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
