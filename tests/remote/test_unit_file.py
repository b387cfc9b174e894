"""examples/tradebot-remote.service: systemd accepts it, and it keeps the token out."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_remote_unit_verifies_and_holds_no_secret(tmp_path: Path) -> None:
    unit = (ROOT / "examples" / "tradebot-remote.service").read_text(encoding="utf-8")
    assert "remote run" in unit and "Type=notify" in unit and "WatchdogSec=" in unit
    assert "RestartPreventExitStatus=2 3 4" in unit and "NoNewPrivileges=yes" in unit
    assert "LoadCredential=telegram_token:" in unit
    assert "TRADEBOT_TELEGRAM_TOKEN=" not in unit and "://" not in unit.replace("file:///", "")
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    executable = Path(sys.executable).with_name("tradebot")
    credential = tmp_path / "telegram_token"
    credential.write_text("")
    local = tmp_path / "tradebot-remote.service"
    local.write_text(
        unit.replace("/home/tradebot/tradebot/.venv/bin/tradebot", str(executable)).replace(
            "/etc/tradebot/telegram_token", str(credential)
        )
    )
    done = subprocess.run([tool, "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""
