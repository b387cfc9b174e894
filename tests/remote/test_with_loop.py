"""The phone against a running loop: `tradebot remote run` and `tradebot run` (simulated broker)
as two real processes, the fake Bot API between the phone and the remote."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.engine.harness import entry_intents, orders, sim_state, ts
from tests.remote.conftest import OPERATOR, loaded_config
from tests.remote.fake_telegram import FakeTelegram
from tests.remote.processes import journal, start, start_remote, stop, text_of, wait
from tradebot.engine.status_view import loop_report

pytestmark = pytest.mark.slow

# Positions stay open (take-profit far away, stop far below) so there is something to flatten.
HOLD = "[risk]\ntake_profit_pct = 900\nstop_loss_pct = 95\n[monitoring]\nheartbeat_s = 1\n"


def test_halt_then_flatten_from_the_phone_reach_a_running_loop(
    tmp_path: Path, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    loaded = loaded_config(tmp_path, fake.url, "\n" + HOLD)
    # The loop has the token too (remote.send_alerts): its alerts reach the same chat.
    loop = start(tmp_path, "run", "--start", "2025-07-01T09:34", "--speed", "300", name="run")
    remote = start_remote(tmp_path)
    try:
        wait(lambda: (loaded.state_dir / "sim-broker.json").exists()
             and bool(sim_state(loaded)["positions"]), 60, "an open position")  # fmt: skip
        fake.wait_sent(lambda m: m["text"].startswith("tradebot: entry"))  # the loop's alert

        # /halt: halt.json, journaled with the user id, the loop stops entries at its next wake.
        fake.message(OPERATOR, "/halt from the phone")
        reply = fake.wait_sent(lambda m: m["text"].startswith("HALTED"))["text"]
        assert f"A running loop (pid {loop.pid}) stops new entries within a second" in reply
        halt = json.loads((loaded.state_dir / "halt.json").read_text())
        assert halt["operator"] == f"telegram:{OPERATOR}" and halt["flatten"] is False
        wait(lambda: bool(journal(tmp_path, "halt_noticed")), 10, "the loop noticing the halt")
        halted = [e for e in journal(tmp_path, "halt") if e["operator"] == f"telegram:{OPERATOR}"]
        assert halted and halted[0]["reason"] == "from the phone"
        noticed_at = ts(journal(tmp_path, "halt_noticed")[0])

        # /flatten with a wrong code: nothing more happens.
        fake.message(OPERATOR, "/flatten")
        fake.wait_sent(lambda m: "To confirm, send /flatten" in m["text"])
        fake.message(OPERATOR, "/flatten 000000")
        fake.wait_sent(lambda m: m["text"].startswith("Wrong code"))
        assert json.loads((loaded.state_dir / "halt.json").read_text())["flatten"] is False
        assert sim_state(loaded)["positions"]

        # /flatten with the code in time: every position sold (exits are never blocked).
        fake.message(OPERATOR, "/flatten")
        ask = fake.wait_sent(lambda m: "To confirm" in m["text"] and m not in fake.sent[:-1])
        code = ask["text"].split("send /flatten ", 1)[1].split()[0]
        fake.message(OPERATOR, f"/flatten {code}")
        fake.wait_sent(lambda m: "Flatten requested" in m["text"])
        wait(lambda: not sim_state(loaded)["positions"], 30, "no position at the broker")
        sold = [r for r in orders(loaded) if r["event"] == "intent" and r["role"] == "exit"]
        assert sold and all(r["exit_reason"] == "manual" for r in sold)
        # No entry was sent after the loop noticed the halt.
        assert not [r for r in entry_intents(loaded) if ts(r) > noticed_at]

        wait(lambda: not loop_report(loaded, datetime.now(UTC))["positions"], 30,
             "the journal to close every position")  # fmt: skip
        fake.message(OPERATOR, "/positions")
        assert (
            "No open positions."
            in fake.wait_sent(lambda m: m["text"].startswith("Positions"))["text"]
        )
        fake.message(OPERATOR, "/resume")
        fake.wait_sent(lambda m: "/resume is not available remotely" in m["text"])
        assert json.loads((loaded.state_dir / "halt.json").read_text())["halted"] is True
    finally:
        remote_code = stop(remote)
        loop_code = stop(loop)
    assert remote_code == 0, text_of(tmp_path)
    assert loop_code == 0, text_of(tmp_path, "run")
    commands = journal(tmp_path, "remote_command")
    assert {c["user_id"] for c in commands} == {OPERATOR}
    assert [c["command"] for c in commands] == [
        "/halt", "/flatten", "/flatten", "/flatten", "/flatten", "/positions", "/resume",
    ]  # fmt: skip


def test_the_session_summary_and_the_loops_alerts_reach_the_same_chat(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    loaded_config(tmp_path, fake.url)
    loop = start(tmp_path, "run", "--start", "2025-07-01", name="run")
    assert loop.wait(120) == 0, text_of(tmp_path, "run")
    texts = fake.texts(OPERATOR)
    assert any(t.startswith("tradebot: start\n") for t in texts)
    summary = [t for t in texts if t.startswith("tradebot: summary\n")]
    assert summary and "2025-07-01" in summary[0]
