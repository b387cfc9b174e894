"""tradebot: a safety-first options-buying bot for Interactive Brokers."""

__version__ = "0.1.0"
