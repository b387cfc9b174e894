"""Timestamps without a timezone in state files (issue 7): a named error from the command that
reads the file (exit 4, the file and key named, no traceback), and entries refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import invoke

IN_WINDOW = "2025-07-01T15:00:00Z"  # 11:00 New York, inside the entry window
NAIVE = "2025-07-01T14:00:00"
IBKR = '[broker]\nkind = "ibkr"\n[trading]\nmode = "paper"\n'  # equity.json is the IBKR equity
SIM = '[trading]\nmode = "paper"\nsymbols = ["SPY"]\n'


def _state(tmp_path: Path, name: str, body: dict[str, Any]) -> Path:
    path = tmp_path / "logs" / "state" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))
    return path


@pytest.mark.parametrize(
    ("name", "body", "key", "config"),
    [
        ("halt.json", {"v": 1, "halted": True, "since": NAIVE}, "since", ""),
        ("halt.json", {"v": 1, "halted": False, "since": NAIVE}, "since", ""),
        (
            "daily-loss.json",
            {"v": 1, "session": "2025-07-01", "tripped_at": NAIVE},
            "tripped_at",
            "",
        ),
        (
            "whale-debounce.json",
            {
                "v": 1,
                "symbols": {"SPY": {"session": "2025-07-01", "signal": "BUY_CALL", "ts": NAIVE}},
            },
            "ts",
            "",
        ),
        ("equity.json", {"v": 1, "equity": "10000", "source": "ibkr", "ts": NAIVE}, "ts", IBKR),
    ],
    ids=["halt-halted", "halt-not-halted", "daily-loss", "whale-debounce", "equity"],
)
def test_a_naive_time_in_a_state_file_blocks_risk_check_naming_the_file_and_key(
    tmp_path: Path, write_config, name: str, body: dict[str, Any], key: str, config: str
) -> None:  # type: ignore[no-untyped-def]
    write_config(config)
    _state(tmp_path, name, body)
    result = invoke(["risk", "check", "--at", IN_WINDOW, "--json"])
    assert result.exit_code == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    assert doc["can_open"] is False
    if name == "halt.json" and body["halted"]:
        # A halt whose time cannot be read is kept (StateStore.halt's contract): it blocks as
        # a halt, without its time; the naive time itself is not named.
        assert [b["rule"] for b in doc["blocking"]] == ["halt"] and doc["halt"]["since"] is None
        return
    named = [
        b["message"]
        for b in doc["blocking"]
        if name in b["message"] and "no timezone" in b["message"]
    ]
    assert named, doc["blocking"]
    assert f"{key} has no timezone" in named[0]
    # The human view says the same, and `phase status` still works, without a traceback.
    text = invoke(["risk", "check", "--at", IN_WINDOW])
    # (A long path is folded over lines in its column: compare without the white space.)
    assert text.exit_code == 4 and name in "".join(text.stdout.split())
    status = invoke(["phase", "status"])
    assert status.exit_code in (0, 4) and "Traceback" not in status.stderr


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ("processed_until", "processed_until has no timezone"),
        ("orders.0.submitted_at", "submitted_at has no timezone"),
        ("fills.0.time", "time has no timezone"),
        ("fills.0.time=null", "fills[0]: time is missing"),  # was an assert (exit 1)
        ("orders.0.contract=text", "AttributeError"),  # was exit 1, nothing named
    ],
)
def test_a_naive_time_in_the_simulated_account_is_a_named_error_for_run(
    tmp_path: Path, write_config, where: str, key: str
) -> None:  # type: ignore[no-untyped-def]
    """`tradebot run --once` resumes `sim-broker.json`; a naive time there was a TypeError."""
    write_config(SIM)
    first = invoke(["run", "--once", "--start", "2025-07-01T11:00"])
    assert first.exit_code == 0, first.stderr
    path = tmp_path / "logs" / "state" / "sim-broker.json"
    state = json.loads(path.read_text())
    state.setdefault("orders", []).append(
        {
            "order_id": 1,
            "contract": {"sec_type": "STK", "symbol": "SPY", "con_id": 756733},
            "action": "BUY",
            "qty": 1,
            "order_type": "LMT",
            "limit": "1",
            "status": "Cancelled",
            "submitted_at": "2025-07-01T14:59:00Z",
        }
    )
    state.setdefault("fills", [])
    if where.startswith("fills.0.time"):
        state["fills"].append(
            {
                "exec_id": "e1",
                "order_id": 1,
                "perm_id": 1,
                "contract": {"sec_type": "STK", "symbol": "SPY", "con_id": 756733},
                "side": "BOT",
                "qty": 1,
                "price": "1",
                "time": None if where.endswith("null") else NAIVE,
                "commission": "1",
                "cum_qty": 1,
                "avg_price": "1",
            }
        )
    elif where == "processed_until":
        state["processed_until"] = "2025-07-01T15:00:00"
    elif where == "orders.0.contract=text":
        state["orders"][0]["contract"] = "SPY"
    else:
        state["orders"][0]["submitted_at"] = NAIVE
    path.write_text(json.dumps(state))
    before = path.read_bytes()
    result = invoke(["run", "--once", "--start", "2025-07-01T11:30"])
    assert result.exit_code == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    assert "sim-broker.json" in result.stderr and key in " ".join(result.stderr.split())
    assert path.read_bytes() == before  # a damaged account is never overwritten
