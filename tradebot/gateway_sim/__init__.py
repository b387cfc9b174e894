"""A local IB Gateway simulator speaking the TWS API protocol: `tradebot gateway sim`.

The real ib_async client connects to it over loopback exactly as to IB Gateway, so operators
rehearse `broker.kind = "ibkr"` with no account, and tests drive the IBKR adapter through the
real protocol. It serves the same simulated market and venue as the built-in simulated broker
(`tradebot.market`). It never imports ib_async: it speaks the protocol in its own words.

Modules: `framing` (frames, handshake), `requests` (client → server), `messages` (server →
client), `contracts` (what is listed), `book` (orders per client over the venue), `quotes`
(market data), `bars` (historical bars), `account` (account values), `faults` (fault
injection), `clock` (simulated time), `control` (text commands), `server` (the asyncio server).

Typical test use::

    sim = GatewaySim(SimSettings(port=0, version=178), clock=SimClock(start, speed=0))
    await sim.start()
    await ib.connectAsync("127.0.0.1", sim.port, clientId=1)
    sim.advance(timedelta(minutes=1))        # fills, ticks
    sim.faults.reject_next_order("no margin") # fault injection
    await sim.stop()
"""

from tradebot.gateway_sim.clock import SimClock
from tradebot.gateway_sim.faults import Faults
from tradebot.gateway_sim.server import GatewaySim, GatewaySimError, SimSettings

__all__ = ["Faults", "GatewaySim", "GatewaySimError", "SimClock", "SimSettings"]
