"""`tradebot backtest`: the real trading loop over history, with a replay of the phase ladder.

* `plan`: options and configuration → a checked `BacktestPlan` (nothing written before this);
* `engine`: the loop (`tradebot.engine`) on the simulated broker over the plan's bars, into
  the isolated output folder, on a `BacktestClock` (`clock`) that leaves out provably idle
  ticks (`skip`);
* `ladder`: the simulated operator that advances when the ladder says eligible, and the replay
  section of the report; `report`: the JSON-ready report.
"""
