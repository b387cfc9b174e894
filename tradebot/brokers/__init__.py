"""Brokers: the interface the trading loop needs (`base`), the built-in simulated broker (`sim`)
and, with `broker.kind = "ibkr"`, Interactive Brokers through ib_async."""
