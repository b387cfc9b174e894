"""Which ticks are idle: moved into the loop itself (`tradebot.engine.wake_plan`), so `tradebot
run` and a backtest leave out the same wakes. Kept for the names tests and tools import."""

from tradebot.engine.wake_plan import SessionSignals

__all__ = ["SessionSignals"]
