"""`tradebot gateway test [--json]`: exit 0 ok, 4 degraded, 5 unreachable, and the JSON contract."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.brokers.ibkr.conftest import CLIENT_ID, ThreadedSim
from tests.cli.conftest import invoke

KEYS = {
    "status",
    "host",
    "port",
    "client_id",
    "server_version",
    "accounts",
    "account",
    "net_liquidation",
    "market_data",
    "option_chain",
    "option_market_data",
    "orders",
    "clock",
    "problems",
    "error",
    "causes",
}


def _config(tmp_path: Path, port: int, timeout_s: int = 2, extra: str = "") -> None:
    (tmp_path / "config.toml").write_text(
        f'[broker]\nkind = "ibkr"\nport = {port}\nclient_id = {CLIENT_ID}\n'
        f'timeout_s = {timeout_s}\n{extra}\n[trading]\nmode = "paper"\n'
        'symbols = ["SPY", "QQQ"]\n',
        encoding="utf-8",
    )


def _same_clock(monkeypatch: pytest.MonkeyPatch, sim: ThreadedSim) -> None:
    """This machine's clock, as the probe reads it, agrees with the simulator's (frozen) one."""
    monkeypatch.setattr("tradebot.brokers.ibkr.probe._wall", sim.sim.clock.now)


def _json(stdout: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(stdout)
    assert set(document) == KEYS
    return document


def test_ok_exits_0_with_everything_the_bot_needs(
    tmp_path: Path, threaded_sim: ThreadedSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, threaded_sim.port)
    _same_clock(monkeypatch, threaded_sim)
    result = invoke(["gateway", "test", "--json"])
    assert result.exit_code == 0, result.stdout
    doc = _json(result.stdout)
    assert doc["status"] == "ok" and doc["problems"] == [] and doc["error"] is None
    assert (doc["host"], doc["port"], doc["client_id"]) == (
        "127.0.0.1",
        threaded_sim.port,
        CLIENT_ID + 1,  # its own id: it can run next to `tradebot run`
    )
    assert doc["server_version"] == 178
    assert doc["accounts"] == [{"id": "DUSIM0001", "kind": "simulator"}]
    assert doc["account"] == "DUSIM0001" and doc["net_liquidation"] == "10000.00"
    md = doc["market_data"]
    assert (md["symbol"], md["requested"], md["received"]) == ("SPY", "live", "live")
    assert float(md["bid"]) > 0 and float(md["ask"]) >= float(md["bid"])
    chain = doc["option_chain"]
    assert chain["available"] and chain["trading_class"] == "SPY"
    assert chain["first_expiry"] == "2025-07-01" and chain["strikes"] > 10
    assert doc["clock"]["skew_s"] == 0.0 and doc["clock"]["follows_gateway"] is False
    assert threaded_sim.sim.exchange.orders == {}  # read-only: nothing was sent

    human = invoke(["gateway", "test"])  # the same, for people
    assert human.exit_code == 0
    assert "ok: everything the bot needs is there" in human.stdout
    assert "account DUSIM0001: simulator (traded)" in human.stdout


def test_degraded_exits_4_naming_what_is_missing(
    tmp_path: Path, threaded_sim: ThreadedSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, threaded_sim.port)
    threaded_sim.call(threaded_sim.sim.faults.market_data_permission, "QQQ", "delayed")
    result = invoke(["gateway", "test", "--json", "--symbol", "QQQ"])  # clocks a year apart
    assert result.exit_code == 4, result.stdout
    doc = _json(result.stdout)
    assert doc["status"] == "degraded"
    assert doc["market_data"]["received"] == "delayed"
    problems = doc["problems"]
    assert any(
        p.startswith("IB sent delayed market data for QQQ (live requested)") for p in problems
    )
    assert any("the gateway's clock is" in p and "broker.clock = 'gateway'" in p for p in problems)
    assert doc["option_chain"]["available"] is True  # what works is still reported

    _same_clock(monkeypatch, threaded_sim)
    threaded_sim.call(threaded_sim.sim.faults.market_data_permission, "*", "none")
    human = invoke(["gateway", "test"])
    assert human.exit_code == 4
    assert "degraded: 2 problem(s)" in human.stdout  # the stock's quote and an option's
    assert "no market data for SPY (IB error 354" in human.stdout
    assert "no market data for the option SPY 2025-07-01" in human.stdout


def test_unreachable_exits_5_with_the_address_and_the_usual_causes(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _config(tmp_path, port, timeout_s=1)
    result = invoke(["gateway", "test", "--json"])
    assert result.exit_code == 5
    doc = _json(result.stdout)
    assert doc["status"] == "unreachable" and doc["port"] == port
    assert f"cannot reach IB Gateway at 127.0.0.1:{port}" in doc["error"]
    assert any("4002 paper / 4001 live" in c for c in doc["causes"])
    assert any("Trusted IPs" in c for c in doc["causes"])
    assert any("error 326" in c for c in doc["causes"])

    human = invoke(["gateway", "test"])
    assert human.exit_code == 5 and "unreachable" in human.stdout


def test_a_rehearsal_config_passes_against_the_simulator_started_in_the_past(
    tmp_path: Path, threaded_sim: ThreadedSim
) -> None:
    _config(tmp_path, threaded_sim.port, extra='clock = "gateway"')
    result = invoke(["gateway", "test", "--json"])  # the simulator is a year behind this machine
    assert result.exit_code == 0, result.stdout
    clock = _json(result.stdout)["clock"]
    assert clock["follows_gateway"] is True and clock["skew_s"] < -86_400


@pytest.mark.parametrize("version", [157, 178])
def test_a_read_only_api_and_a_missing_option_subscription_are_degraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int
) -> None:
    """What stops the first order, found before it is sent: a Gateway whose API is Read-Only
    refuses every order with 321 (IbcAlpha/IBC#341) — `gateway test` asks a what-if order,
    which IB never executes — and an account without OPRA gets stock quotes but 354 for every
    option (`gateway test` asks one option's quote, not only the stock's)."""
    sim = ThreadedSim(version=version)
    try:
        _config(tmp_path, sim.port)
        _same_clock(monkeypatch, sim)
        sim.call(sim.sim.faults.set_read_only_api)
        sim.call(sim.sim.faults.option_data_permission, "*", "none")
        result = invoke(["gateway", "test", "--json"])
        assert result.exit_code == 4, result.stdout
        doc = _json(result.stdout)
        assert doc["status"] == "degraded"
        assert doc["market_data"]["received"] == "live"  # the stock's quote is fine
        assert doc["option_market_data"]["received"] == "none"
        assert doc["orders"] == {"checked": True, "read_only": True, "error": "321"}
        problems = doc["problems"]
        assert len(problems) == 2
        assert any("no market data for the option SPY" in p and "OPRA" in p for p in problems)
        assert any("Read-Only" in p and "READ_ONLY_API=no" in p for p in problems)
        assert sim.sim.exchange.orders == {}
        human = invoke(["gateway", "test"])
        assert human.exit_code == 4
        assert "orders: refused: the API is Read-Only" in human.stdout
    finally:
        sim.stop()
