"""One market model: the IB Gateway simulator quotes options exactly as the simulated broker of
`tradebot run` does, calibrated model and `broker.sim.pricing` overrides alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ib_async import IB

from tests.cli.conftest import invoke
from tests.gateway_sim.conftest import START, connect, near_money_call, scenario
from tradebot.config import load_config
from tradebot.engine.clock import SimClock
from tradebot.engine.runner import RunOptions, make_context
from tradebot.gateway_sim import GatewaySim, SimSettings
from tradebot.market.volatility import pricing_params


def _broker_market(config: Path) -> Any:
    """The market of the simulated broker `tradebot run` builds from `config`."""
    loaded = load_config(config)
    options = RunOptions(speed=None, start=START, simulated=True)
    ctx = make_context(loaded, options, SimClock(START, None), lambda *a, **k: None)
    return ctx.broker.market  # type: ignore[attr-defined]


def test_the_gateway_quotes_options_as_the_simulated_broker_does(tmp_path: Path) -> None:
    market = _broker_market(tmp_path / "absent.toml")  # the built-in (calibrated) defaults
    assert market.params == pricing_params()

    async def body(sim: GatewaySim) -> None:
        assert sim.market.params == market.params
        ib: IB = await connect(sim)
        for above in (-0.01, 0.0, 0.02):
            option = await near_money_call(ib, sim, above)
            [ticker] = await ib.reqTickersAsync(option)
            contract = sim.universe.by_con_id[option.conId]
            quote = market.option_quote(contract, START)
            assert quote is not None
            assert (ticker.bid, ticker.ask) == (float(quote.bid), float(quote.ask))
        ib.disconnect()

    scenario(178, body)


def test_gateway_sim_prices_with_the_configured_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tradebot gateway sim` reads `broker.sim.pricing` like `tradebot run` does."""
    config = tmp_path / "config.toml"
    config.write_text("[broker.sim.pricing]\nindex_premium = 1.2\nspread = 0.05\n")
    seen: list[SimSettings] = []
    monkeypatch.setattr(
        "tradebot.gateway_sim.runner.run_foreground", lambda settings, port: seen.append(settings)
    )
    result = invoke(["--config", str(config), "gateway", "sim", "--port", "0"])
    assert result.exit_code == 0, result.stderr
    [settings] = seen
    broker = _broker_market(config).params
    assert settings.pricing == broker
    assert broker.index_premium == 1.2 and broker.spread == 0.05
    assert GatewaySim(settings).market.params == broker
