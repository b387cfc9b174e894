"""The simulated IB Gateway: an asyncio server speaking the TWS API protocol on loopback.

One `GatewaySim` owns the simulated market, the venue (`SimExchange`, shared with the built-in
simulated broker), the order book, the clock and the faults. Each API connection is a `Session`:
handshake (the version is min(client max, simulator max), at least 157), `startApi` with the
client id, then requests dispatched by message id. Answers go to the asking session; order and
execution news goes to the order's client and to every client connected as client id 0 (which
sees all orders, like the Gateway's master client).

Time moves in `step()`: the venue processes fills up to the clock's time, streaming market data
sends what changed, and the account is pushed to subscribers. A background task calls it every
`tick_interval` real seconds; tests freeze the clock and call `advance` themselves.

Why one module: a connection's state machine and the request dispatch share the per-session state
(order ids, subscriptions, the clock); the wire layouts already live in `messages`/`requests` and
the orders in `book`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradebot.core.instruments import OptionContract, Quote
from tradebot.core.market_time import market_datetime
from tradebot.core.network import is_loopback
from tradebot.core.sessions import DEFAULT_CALENDAR
from tradebot.core.trades import EXCHANGE_TZ, session_of
from tradebot.core.validation import utc_timestamp
from tradebot.errors import CorruptRecordError
from tradebot.gateway_sim import account as acct
from tradebot.gateway_sim import bars
from tradebot.gateway_sim import messages as msg
from tradebot.gateway_sim import requests as rq
from tradebot.gateway_sim.book import (
    AccountNotice,
    ErrorNotice,
    FillNotice,
    Notice,
    OrderBook,
    OrderNotice,
    ib_day_start,
)
from tradebot.gateway_sim.clock import SimClock
from tradebot.gateway_sim.contracts import (
    MARKET_RULES,
    Contract,
    Universe,
    WireContract,
    wire_contract,
)
from tradebot.gateway_sim.faults import PACING_TEXT, Faults
from tradebot.gateway_sim.framing import (
    Fields,
    ProtocolError,
    encode,
    negotiate,
    read_frame,
    read_hello,
    split_payload,
)
from tradebot.gateway_sim.messages import ExecView, OrderView
from tradebot.gateway_sim.quotes import (
    Entitlement,
    Stream,
    entitlement,
    market_open,
    previous_close,
    quote_ticks,
)
from tradebot.market import make_market
from tradebot.market.exchange import SimExchange
from tradebot.market.model import MarketModel
from tradebot.market.volatility import PricingParams
from tradebot.storage import read_json_state, write_json_state

log = logging.getLogger("tradebot.gateway_sim")

MIN_VERSION, MAX_VERSION = 157, 178  # what ib_async 2.x speaks; every version between works
STATE_VERSION = 1
FARMS_OK = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
NO_DEFINITION = "No security definition has been found for the request"
READ_ONLY = (
    "Error validating request.-'bN' : cause - The API interface is currently in Read-Only mode."
)
CLIENT_ID_IN_USE = (
    "Unable to connect as the client id is already in use. Retry with a unique client id."
)


MAX_ACCOUNT_SUMMARIES = 2  # IB error 322 beyond this many open subscriptions
MAX_CONNECTIONS = 32  # TWS and IB Gateway accept at most 32 API clients


class GatewaySimError(Exception):
    """The simulator cannot start as asked (address refused, port taken, bad settings)."""


@dataclass(frozen=True)
class WireEvent:
    """One order message the simulator received or sent, stamped with the real monotonic time
    (tests measure how fast the client reacts: a sell after its legs' cancel confirmation)."""

    at: float
    direction: str  # "recv" | "send"
    what: str  # placeOrder, cancelOrder, orderStatus
    client_id: int
    order_id: int
    detail: str = ""  # the status sent, or the order's action, type and orderRef received


@dataclass(frozen=True)
class SimSettings:
    host: str = "127.0.0.1"
    port: int = 4002  # 0 = any free port (tests)
    version: int = MAX_VERSION  # the highest server version offered
    seed: int = 1
    bars_dir: Path | None = None
    symbols: tuple[str, ...] | None = None
    account: str = "DUSIM0001"
    cash: Decimal = Decimal(10000)
    start: datetime | None = None  # None: the wall clock
    speed: float = 1.0
    state_file: Path | None = None
    unsafe_bind: bool = False
    calendar: str = DEFAULT_CALENDAR
    tick_interval: float = 0.25  # real seconds between time steps
    # How options are priced: the same calibrated model as the simulated broker (default), or
    # the operator's `broker.sim.pricing`.
    pricing: PricingParams | None = None


class Session:
    """One API connection."""

    def __init__(self, writer: asyncio.StreamWriter, peer: str) -> None:
        self.writer = writer
        self.peer = peer
        self.version = MAX_VERSION
        self.client_id: int | None = None
        self.data_type = 1
        self.streams: dict[int, Stream] = {}
        self.positions = False
        self.account_updates = False
        self.multi: dict[int, str] = {}  # reqAccountUpdatesMulti: req id → model code
        self.positions_multi: dict[int, str] = {}
        self.summaries: dict[int, tuple[str, ...]] = {}
        self.pnl: dict[int, int] = {}  # reqPnL (conId 0) / reqPnLSingle subscriptions
        self.pnl_sent: dict[int, tuple[object, ...]] = {}
        self.closed = False

    def send(self, fields: Iterable[object]) -> None:
        if not self.closed and not self.writer.is_closing():
            self.writer.write(encode(fields))

    def error(self, req_id: int, code: int, text: str) -> None:
        self.send(msg.error(self.version, req_id, code, text))

    def close(self, *, abort: bool = False) -> None:
        """Close the connection: gracefully (what was sent is delivered) or by abort."""
        if self.closed:
            return
        self.closed = True
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()


Handler = Callable[[Session, Fields], None]


class GatewaySim:
    """The simulator. `await start()`, connect ib_async to `port`, `await stop()`."""

    def __init__(
        self,
        settings: SimSettings | None = None,
        *,
        clock: SimClock | None = None,
        market: MarketModel | None = None,
    ) -> None:
        self.settings = settings = settings or SimSettings()
        if not MIN_VERSION <= settings.version <= MAX_VERSION:
            raise GatewaySimError(
                f"server version {settings.version} is not supported; use {MIN_VERSION} to "
                f"{MAX_VERSION} (ib_async 2.x accepts that range)"
            )
        self.market = market or make_market(
            seed=settings.seed,
            bars_dir=settings.bars_dir,
            calendar=settings.calendar,
            params=settings.pricing,
        )
        self.universe = Universe(self.market, settings.symbols)
        if not self.universe.symbols:
            raise GatewaySimError("no symbol to serve: check --symbols against the bars given")
        self.faults = Faults(target=self)
        self.exchange = SimExchange(
            self.market, cash=settings.cash, account=settings.account, exercise_at_expiry=True
        )
        self.book = OrderBook(self.exchange, self.universe, self.faults)
        saved = self._load_state()
        self.clock = clock or self._clock_for(saved)
        self.book.advance(self.clock.now())  # fills that happened while the server was down
        self.sessions: dict[int, Session] = {}
        self.protocol_problems: list[str] = []
        self.wire: deque[WireEvent] = deque(maxlen=10_000)
        self.connected_to_ib = True
        self.unset_commissions: set[str] = set()  # exec ids reported with IB's unset double
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dirty = False
        self._handlers: dict[int, tuple[str, Handler]] = self._handler_table()

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        host = self.settings.host
        if not is_loopback(host) and not self.settings.unsafe_bind:
            raise GatewaySimError(
                f"refusing to listen on {host}: the TWS protocol has no authentication, so the "
                "simulator binds 127.0.0.1 only (add --unsafe-bind to override)"
            )
        try:
            self._server = await asyncio.start_server(self._connection, host, self.settings.port)
        except OSError as exc:
            raise GatewaySimError(
                f"cannot listen on {host}:{self.settings.port} ({exc.strerror or exc}); "
                "is a gateway or another simulator already using that port? choose another "
                "with --port"
            ) from None
        self._ticker = asyncio.create_task(self._run_clock())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.save_state()

    async def __aenter__(self) -> GatewaySim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the simulator is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    def describe(self) -> str:
        """The one-line banner."""
        symbols = ",".join(self.universe.symbols)
        return (
            f"IB Gateway simulator on {self.address}, server version {self.settings.version}, "
            f"account {self.exchange.account}, symbols {symbols} ({self.market.describe()}), "
            f"clock {self.clock.describe()}; type 'help' for faults, Ctrl-C to stop"
        )

    # -- time ----------------------------------------------------------------------------------
    async def _run_clock(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval)
            try:
                self.step()
            except Exception:  # a bug here must not stop the clock for everyone
                log.exception("gateway simulator: time step failed")

    def step(self) -> None:
        """Bring the venue up to the clock: fills, expiries, streaming ticks, account pushes."""
        now = self.clock.now()
        self._deliver(self.book.advance(now))
        if self.connected_to_ib:
            for session in list(self.sessions.values()):
                for stream in list(session.streams.values()):
                    self._stream(session, stream, now)
                for req_id in list(session.pnl):
                    self._send_pnl(session, req_id)
        if self._dirty:
            self.save_state()

    def advance(self, delta: timedelta) -> datetime:
        """Move the simulated clock forward and process everything up to then (tests)."""
        self.clock.advance(delta)
        self.step()
        return self.clock.now()

    def set_time(self, moment: datetime) -> None:
        self.clock.set(moment)
        self.step()

    # -- connections ---------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = "{}:{}".format(*writer.get_extra_info("peername", ("?", 0))[:2])
        if len(self._tasks) >= MAX_CONNECTIONS:
            # Like a TWS at its 32 API clients: the connection is closed at once, and holds
            # nothing (a flood of silent sockets never starves the clients already connected).
            self._problem(Session(writer, peer), f"refused: {MAX_CONNECTIONS} connections open")
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        session = Session(writer, peer)
        try:
            await self._converse(session, reader)
        except ProtocolError as exc:
            self._problem(session, str(exc))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._forget(session)
            session.close()
            if task is not None:
                self._tasks.discard(task)

    async def _converse(self, session: Session, reader: asyncio.StreamReader) -> None:
        hello = await read_hello(reader)
        version = negotiate(hello, range(MIN_VERSION, self.settings.version + 1))
        if version is None:
            log.warning(
                "refused a client from %s: it speaks versions %d..%d, the simulator %d..%d",
                session.peer,
                hello.min_version,
                hello.max_version,
                MIN_VERSION,
                self.settings.version,
            )
            return
        session.version = version
        session.send(msg.server_hello(version, self.clock.now()))
        while not session.closed:
            payload = await read_frame(reader)
            if payload is None:
                return
            fields = split_payload(payload)
            if fields:
                self._dispatch(session, fields)

    def _forget(self, session: Session) -> None:
        cid = session.client_id
        if cid is not None and self.sessions.get(cid) is session:
            del self.sessions[cid]
            log.info("client %d disconnected", cid)

    def _dispatch(self, session: Session, fields: list[str]) -> None:
        try:
            msg_id = int(fields[0])
        except ValueError:
            self._problem(session, f"message id {fields[0]!r} is not a number")
            return
        if session.client_id is None and msg_id != rq.START_API:
            self._problem(session, f"request {msg_id} arrived before startApi")
            return
        entry = self._handlers.get(msg_id)
        if entry is None:
            self._problem(session, f"request {msg_id} is not supported by the simulator")
            return
        name, handler = entry
        try:
            handler(session, Fields(fields[1:], name))
        except (ProtocolError, ValueError, ArithmeticError) as exc:
            # A field IB would not accept (a date out of range, a number too big): answered
            # with 321 as IB does, and the connection stays up for the client's next request.
            self._problem(
                session, f"{name}: {exc}" if not isinstance(exc, ProtocolError) else str(exc)
            )
            session.error(-1, 321, f"Error validating request: {exc}")

    def _problem(self, session: Session, text: str) -> None:
        who = f"client {session.client_id}" if session.client_id is not None else session.peer
        self.protocol_problems.append(f"{who}: {text}")
        log.warning("gateway simulator: %s: %s", who, text)

    def _handler_table(self) -> dict[int, tuple[str, Handler]]:
        return {
            rq.START_API: ("startApi", self._start_api),
            rq.REQ_IDS: ("reqIds", self._req_ids),
            rq.REQ_CURRENT_TIME: ("reqCurrentTime", self._current_time),
            rq.REQ_MANAGED_ACCOUNTS: ("reqManagedAccts", self._managed_accounts),
            rq.REQ_MARKET_DATA_TYPE: ("reqMarketDataType", self._market_data_type),
            rq.REQ_CONTRACT_DETAILS: ("reqContractDetails", self._contract_details),
            rq.REQ_SEC_DEF_OPT_PARAMS: ("reqSecDefOptParams", self._option_params),
            rq.REQ_MARKET_RULE: ("reqMarketRule", self._market_rule),
            rq.REQ_HISTORICAL_DATA: ("reqHistoricalData", self._historical),
            rq.CANCEL_HISTORICAL_DATA: ("cancelHistoricalData", _ignore),
            rq.REQ_MKT_DATA: ("reqMktData", self._market_data),
            rq.CANCEL_MKT_DATA: ("cancelMktData", self._cancel_market_data),
            rq.PLACE_ORDER: ("placeOrder", self._place_order),
            rq.CANCEL_ORDER: ("cancelOrder", self._cancel_order),
            rq.REQ_GLOBAL_CANCEL: ("reqGlobalCancel", self._global_cancel),
            rq.REQ_OPEN_ORDERS: ("reqOpenOrders", self._open_orders),
            rq.REQ_ALL_OPEN_ORDERS: ("reqAllOpenOrders", self._all_open_orders),
            rq.REQ_AUTO_OPEN_ORDERS: ("reqAutoOpenOrders", _ignore),
            rq.REQ_COMPLETED_ORDERS: ("reqCompletedOrders", self._completed_orders),
            rq.REQ_EXECUTIONS: ("reqExecutions", self._executions),
            rq.REQ_POSITIONS: ("reqPositions", self._positions),
            rq.CANCEL_POSITIONS: ("cancelPositions", self._cancel_positions),
            rq.REQ_POSITIONS_MULTI: ("reqPositionsMulti", self._positions_multi),
            rq.CANCEL_POSITIONS_MULTI: ("cancelPositionsMulti", self._cancel_positions_multi),
            rq.REQ_ACCOUNT_UPDATES: ("reqAccountUpdates", self._account_updates),
            rq.REQ_ACCOUNT_UPDATES_MULTI: ("reqAccountUpdatesMulti", self._account_multi),
            rq.CANCEL_ACCOUNT_UPDATES_MULTI: ("cancelAccountUpdatesMulti", self._cancel_multi),
            rq.REQ_ACCOUNT_SUMMARY: ("reqAccountSummary", self._account_summary),
            rq.CANCEL_ACCOUNT_SUMMARY: ("cancelAccountSummary", self._cancel_summary),
            rq.SET_SERVER_LOG_LEVEL: ("setServerLogLevel", _ignore),
            rq.REQ_PNL: ("reqPnL", self._pnl),
            rq.CANCEL_PNL: ("cancelPnL", self._cancel_pnl),
            rq.REQ_PNL_SINGLE: ("reqPnLSingle", self._pnl_single),
            rq.CANCEL_PNL_SINGLE: ("cancelPnLSingle", self._cancel_pnl),
        }

    # -- connection requests -------------------------------------------------------------------
    def _start_api(self, session: Session, f: Fields) -> None:
        if session.client_id is not None:
            self._problem(session, "startApi sent twice")
            return
        cid = rq.start_api(f).client_id
        if cid in self.sessions:
            log.warning("refused client id %d from %s: already in use (326)", cid, session.peer)
            session.error(-1, 326, CLIENT_ID_IN_USE)
            session.close()
            return
        session.client_id = cid
        self.sessions[cid] = session
        session.send(msg.managed_accounts([self.exchange.account]))
        rolled = self.faults.take_rolled_back_id()
        next_id = rolled if rolled is not None else self.book.next_valid_id(cid)
        session.send(msg.next_valid_id(next_id))
        if self.connected_to_ib:
            for code, text in FARMS_OK:
                session.error(-1, code, text)
        else:
            session.error(-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")
        log.info(
            "client %d connected from %s (server version %d, nextValidId %d)",
            cid,
            session.peer,
            session.version,
            next_id,
        )

    def _req_ids(self, session: Session, f: Fields) -> None:
        rq.versioned_int(f)
        session.send(msg.next_valid_id(self.book.next_valid_id(_cid(session))))

    def _current_time(self, session: Session, f: Fields) -> None:
        session.send(msg.current_time(self.clock.now()))

    def _managed_accounts(self, session: Session, f: Fields) -> None:
        session.send(msg.managed_accounts([self.exchange.account]))

    def _market_data_type(self, session: Session, f: Fields) -> None:
        value = rq.versioned_int(f)
        if value not in (1, 2, 3, 4):
            session.error(-1, 321, f"Error validating request: market data type {value}")
            return
        session.data_type = value

    # -- contracts -----------------------------------------------------------------------------
    def _contract_details(self, session: Session, f: Fields) -> None:
        req = rq.contract_details(f)
        now = self.clock.now()
        found = self.universe.matches(req.contract, session_of(now))
        if not found:
            session.error(req.req_id, 200, NO_DEFINITION)
            return
        for contract in found:
            info = self.universe.info(contract, req.contract.exchange, now)
            session.send(msg.contract_details(session.version, req.req_id, info))
        session.send(msg.contract_details_end(req.req_id))

    def _option_params(self, session: Session, f: Fields) -> None:
        req = rq.option_params(f)
        stock = self.universe.stock(req.symbol)
        if stock is None or (req.con_id and req.con_id != stock.con_id):
            session.error(req.req_id, 200, NO_DEFINITION)
            return
        chain = self.market.chain(stock.symbol, session_of(self.clock.now()))
        expiries = [f"{e:%Y%m%d}" for e in chain.expiries]
        for exchange in ("SMART", "CBOE"):
            session.send(
                msg.option_parameters(
                    req.req_id,
                    exchange,
                    stock.con_id,
                    chain.trading_class,
                    chain.multiplier,
                    expiries,
                    list(chain.strikes),
                )
            )
        session.send(msg.option_parameters_end(req.req_id))

    def _market_rule(self, session: Session, f: Fields) -> None:
        rule = rq.plain_int(f)
        ladder = MARKET_RULES.get(rule)
        if ladder is None:
            self._problem(session, f"market rule {rule} is not one of the simulator's")
            return
        session.send(msg.market_rule(rule, ladder))

    # -- market data ---------------------------------------------------------------------------
    def _historical(self, session: Session, f: Fields) -> None:
        req = rq.historical_data(f)
        if self.faults.take_pacing_violation():
            session.error(req.req_id, 162, PACING_TEXT)
            return
        now = self.clock.now()
        contract = self.universe.resolve(req.contract, session_of(now))
        if contract is None:
            session.error(req.req_id, 200, NO_DEFINITION)
            return
        if isinstance(contract, OptionContract):
            session.error(
                req.req_id,
                162,
                "Historical Market Data Service error message:HMDS query returned no data: "
                "the simulator serves historical bars for stocks only",
            )
            return
        try:
            answer = bars.answer(req, self.market, contract.symbol, now)
        except bars.BarsRefused as exc:
            session.error(req.req_id, 162, str(exc))
            return
        if not answer.bars:
            session.error(
                req.req_id,
                162,
                f"Historical Market Data Service error message:HMDS query returned no data: "
                f"{contract.symbol}@SMART Trades",
            )
            return
        session.send(msg.historical_data(req.req_id, answer.start, answer.end, answer.bars))

    def _market_data(self, session: Session, f: Fields) -> None:
        req = rq.market_data(f)
        now = self.clock.now()
        contract = self.universe.resolve(req.contract, session_of(now))
        if contract is None:
            session.error(req.req_id, 200, NO_DEFINITION)
            return
        ent = entitlement(
            session.data_type,
            self.faults.permission_for(
                contract.symbol, option=isinstance(contract, OptionContract)
            ),
            market_open(self.market, now),
        )
        if ent.refused is not None:
            session.error(req.req_id, *ent.refused)
            return
        if ent.warning is not None:
            session.error(req.req_id, *ent.warning)
        session.send(msg.market_data_type(req.req_id, ent.wire_type))
        if req.snapshot:
            quote = self._quote(contract, ent, now) if self.connected_to_ib else None
            if quote is not None:
                prev = previous_close(self.market, contract, now)
                for fields in quote_ticks(req.req_id, quote, ent.delayed, prev):
                    session.send(fields)
            session.send(msg.tick_snapshot_end(req.req_id))
            return
        stream = Stream(req.req_id, contract, ent)
        session.streams[req.req_id] = stream
        if self.connected_to_ib:
            self._stream(session, stream, now)

    def _cancel_market_data(self, session: Session, f: Fields) -> None:
        session.streams.pop(rq.versioned_int(f), None)

    def _quote(self, contract: Contract, ent: Entitlement, now: datetime) -> Quote | None:
        stale = self.faults.stale_time(contract.symbol)
        moment = min(now, stale) if stale is not None else now
        return self.exchange.quote(contract, moment, ent.data_type)

    def _stream(self, session: Session, stream: Stream, now: datetime) -> None:
        quote = self._quote(stream.contract, stream.entitlement, now)
        if quote is None:
            return
        prev = previous_close(self.market, stream.contract, now)
        for fields in quote_ticks(
            stream.req_id, quote, stream.entitlement.delayed, prev, sent=stream.sent
        ):
            session.send(fields)

    # -- orders --------------------------------------------------------------------------------
    def _place_order(self, session: Session, f: Fields) -> None:
        req = rq.place_order(f, session.version)
        detail = f"{req.action} {req.order_type} {req.order_ref}"
        self._note("recv", "placeOrder", _cid(session), req.order_id, detail)
        if self.faults.read_only_api:
            session.error(req.order_id, 321, READ_ONLY)
            log.info("client %d order %d refused: Read-Only API (321)", _cid(session), req.order_id)
            return
        if self.faults.take_lost_order():
            # The socket died with the order in flight: it never reached the gateway.
            log.info("fault: client %d order %d lost with its socket", _cid(session), req.order_id)
            self.drop_clients(_cid(session))
            return
        notices = self.book.place(_cid(session), req, self.clock.now())
        log.info(
            "client %d order %d: %s %s %s %s%s%s",
            _cid(session),
            req.order_id,
            req.action,
            req.quantity,
            req.contract.label,
            req.order_type,
            f" {req.limit}" if req.limit is not None else "",
            "" if req.transmit else " (held: transmit=False)",
        )
        self._deliver(notices)

    def _cancel_order(self, session: Session, f: Fields) -> None:
        order_id = rq.cancel_order(f)
        self._note("recv", "cancelOrder", _cid(session), order_id)
        self._deliver(self.book.cancel(_cid(session), order_id, self.clock.now()))

    def _global_cancel(self, session: Session, f: Fields) -> None:
        self._deliver(self.book.cancel_all(self.clock.now()))

    def _open_orders(self, session: Session, f: Fields) -> None:
        if not self._answers(session, "open-orders", "reqOpenOrders"):
            return
        cid = _cid(session)
        self._send_open_orders(session, None if cid == 0 else cid)

    def _all_open_orders(self, session: Session, f: Fields) -> None:
        if not self._answers(session, "open-orders", "reqAllOpenOrders"):
            return
        self._send_open_orders(session, None)

    def _send_open_orders(self, session: Session, client_id: int | None) -> None:
        for view in self.book.open_orders(client_id):
            session.send(msg.open_order(session.version, self._order_echo(view)))
            session.send(msg.order_status(view))
        session.send(msg.open_order_end())

    def _completed_orders(self, session: Session, f: Fields) -> None:
        rq.plain_int(f)  # apiOnly: every order here came through the API
        if not self._answers(session, "completed-orders", "reqCompletedOrders"):
            return
        for view in self.book.completed_orders(self.clock.now()):
            session.send(msg.completed_order(session.version, self._order_echo(view)))
        session.send(msg.completed_orders_end())

    def _executions(self, session: Session, f: Fields) -> None:
        flt = rq.executions(f)
        if not self.faults.answers("executions"):
            log.info(
                "fault: reqExecutions %d of client %d left unanswered", flt.req_id, _cid(session)
            )
            return
        for found in self.book.executions(_cid(session), flt, self.clock.now()):
            view = self._exec_echo(found.view)
            session.send(msg.exec_details(session.version, flt.req_id, view))
            session.send(
                msg.commission_report(found.view.exec_id, self._commission(found), found.realized)
            )
        session.send(msg.exec_details_end(flt.req_id))

    def _note(
        self, direction: str, what: str, client_id: int, order_id: int, detail: str = ""
    ) -> None:
        self.wire.append(WireEvent(time.monotonic(), direction, what, client_id, order_id, detail))

    def _deliver(self, notices: list[Notice]) -> None:
        """Send the book's notices to whom they concern, commission reports after the batch."""
        if not notices:
            return
        self._dirty = True
        reports: list[tuple[FillNotice, list[Session]]] = []
        for notice in notices:
            if isinstance(notice, OrderNotice):
                view = notice.view
                audience = self._audience(view.client_id, only_owner=notice.only_owner)
                for session in audience:
                    session.send(msg.open_order(session.version, self._order_echo(view)))
                    if not view.what_if:  # a what-if answer is the openOrder alone
                        session.send(msg.order_status(view))
                if view.what_if:
                    continue
                self._note("send", "orderStatus", view.client_id, view.order_id, view.status)
                log.info(
                    "order %d of client %d (perm %d): %s, filled %d",
                    view.order_id,
                    view.client_id,
                    view.perm_id,
                    view.status,
                    view.filled,
                )
            elif isinstance(notice, FillNotice):
                if self.faults.take_unset_commission():
                    self.unset_commissions.add(notice.view.exec_id)
                audience = self._audience(notice.view.client_id)
                for session in audience:
                    session.send(
                        msg.exec_details(session.version, -1, self._exec_echo(notice.view))
                    )
                reports.append((notice, audience))
                e = notice.view
                log.info(
                    "fill %s: %s %d %s at %s (order %d of client %d)",
                    e.exec_id,
                    e.side,
                    e.shares,
                    e.contract.local_symbol,
                    e.price,
                    e.order_id,
                    e.client_id,
                )
            elif isinstance(notice, ErrorNotice):
                owner = self.sessions.get(notice.client_id)
                if owner is not None:
                    owner.error(notice.order_id, notice.code, notice.text)
                log.info(
                    "error %d for order %d of client %d: %s",
                    notice.code,
                    notice.order_id,
                    notice.client_id,
                    notice.text,
                )
            else:
                self._push_account(notice)
        for fill, audience in reports:
            report = msg.commission_report(fill.view.exec_id, self._commission(fill), fill.realized)
            for session in audience:
                session.send(report)

    def _commission(self, fill: FillNotice) -> Decimal | None:
        """The commission as reported: None (IB's unset double) under that fault."""
        return None if fill.view.exec_id in self.unset_commissions else fill.commission

    def _audience(self, client_id: int, *, only_owner: bool = False) -> list[Session]:
        out = []
        owner = self.sessions.get(client_id)
        if owner is not None:
            out.append(owner)
        master = self.sessions.get(0)
        if not only_owner and master is not None and client_id != 0:
            out.append(master)
        return out

    # -- account -------------------------------------------------------------------------------
    def _answers(self, session: Session, request: str, name: str) -> bool:
        if self.faults.answers(request):
            return True
        log.info("fault: %s of client %d left unanswered", name, _cid(session))
        return False

    def _positions(self, session: Session, f: Fields) -> None:
        if not self._answers(session, "positions", "reqPositions"):
            return  # not even subscribed: no position, no positionEnd, no update later
        session.positions = True
        for pos in self.exchange.positions.values():
            wire = wire_contract(pos.contract)
            avg = pos.avg_cost * _multiplier(wire)
            session.send(msg.position(self.exchange.account, wire, pos.qty, avg))
        session.send(msg.position_end())

    def _cancel_positions(self, session: Session, f: Fields) -> None:
        session.positions = False

    def _positions_multi(self, session: Session, f: Fields) -> None:
        req = rq.multi_request(f)
        session.positions_multi[req.req_id] = req.model_code
        for pos in self.exchange.positions.values():
            wire = wire_contract(pos.contract)
            avg = pos.avg_cost * _multiplier(wire)
            session.send(
                msg.position_multi(
                    req.req_id, self.exchange.account, req.model_code, wire, pos.qty, avg
                )
            )
        session.send(msg.position_multi_end(req.req_id))

    def _cancel_positions_multi(self, session: Session, f: Fields) -> None:
        session.positions_multi.pop(rq.versioned_int(f), None)

    def _account_updates(self, session: Session, f: Fields) -> None:
        req = rq.account_updates(f)
        session.account_updates = req.subscribe
        if req.subscribe:
            self._send_account(session, download=True)

    def _send_account(
        self, session: Session, *, download: bool, con_ids: tuple[int, ...] = ()
    ) -> None:
        now = self.clock.now()
        account = self.exchange.account
        for key, value, currency in acct.values(self.exchange, now):
            session.send(msg.account_value(key, value, currency, account))
        rows = {r.contract.con_id: r for r in acct.portfolio(self.exchange, now)}
        for con_id in con_ids:
            if con_id not in rows and con_id in self.universe.by_con_id:
                wire = wire_contract(self.universe.by_con_id[con_id])
                zero = Decimal(0)
                session.send(msg.portfolio_value(wire, 0, zero, zero, zero, zero, zero, account))
        for row in rows.values():
            session.send(
                msg.portfolio_value(
                    row.contract,
                    row.qty,
                    row.market_price,
                    row.market_value,
                    row.avg_cost,
                    row.unrealized,
                    Decimal(0),
                    account,
                )
            )
        session.send(msg.account_time(now.astimezone(EXCHANGE_TZ)))
        if download:
            session.send(msg.account_download_end(account))

    def _account_multi(self, session: Session, f: Fields) -> None:
        req = rq.multi_request(f)
        session.multi[req.req_id] = req.model_code
        self._send_multi(session, req.req_id, req.model_code)
        session.send(msg.account_update_multi_end(req.req_id))

    def _send_multi(self, session: Session, req_id: int, model: str) -> None:
        account = self.exchange.account
        for key, value, currency in acct.values(self.exchange, self.clock.now()):
            session.send(msg.account_update_multi(req_id, account, model, key, value, currency))

    def _cancel_multi(self, session: Session, f: Fields) -> None:
        session.multi.pop(rq.versioned_int(f), None)

    def _account_summary(self, session: Session, f: Fields) -> None:
        req = rq.account_summary(f)
        if len(session.summaries) >= MAX_ACCOUNT_SUMMARIES:
            # IB keeps at most two account summary subscriptions open per client.
            session.error(
                req.req_id,
                322,
                "Error processing request.-'bW' : cause - Maximum number of account summary "
                "requests exceeded",
            )
            return
        session.summaries[req.req_id] = req.tags
        self._send_summary(session, req.req_id, req.tags)
        session.send(msg.account_summary_end(req.req_id))

    def _send_summary(self, session: Session, req_id: int, tags: tuple[str, ...]) -> None:
        account = self.exchange.account
        for tag, value, currency in acct.summary(self.exchange, self.clock.now(), tags):
            session.send(msg.account_summary(req_id, account, tag, value, currency))

    def _pnl(self, session: Session, f: Fields) -> None:
        req = rq.pnl_request(f, single=False)
        session.pnl[req.req_id] = 0
        self._send_pnl(session, req.req_id)

    def _pnl_single(self, session: Session, f: Fields) -> None:
        req = rq.pnl_request(f, single=True)
        if req.con_id not in self.universe.by_con_id:
            session.error(req.req_id, 200, NO_DEFINITION)
            return
        session.pnl[req.req_id] = req.con_id
        self._send_pnl(session, req.req_id)

    def _cancel_pnl(self, session: Session, f: Fields) -> None:
        req_id = rq.plain_int(f)
        session.pnl.pop(req_id, None)
        session.pnl_sent.pop(req_id, None)

    def _send_pnl(self, session: Session, req_id: int) -> None:
        """The account's P&L today (reqPnL) or one position's (reqPnLSingle), sent again when
        it changes, as IB streams it (about once a second)."""
        now = self.clock.now()
        con_id = session.pnl[req_id]
        if con_id == 0:
            day = ib_day_start(now)
            realized_today = sum(
                (self.book.realized.get(f.exec_id, Decimal(0)) for f in self.exchange.fills
                 if f.time >= day),
                Decimal(0),
            )  # fmt: skip
            daily, unrealized, realized = acct.pnl(self.exchange, realized_today, now)
            fields = msg.pnl(req_id, daily, unrealized, realized)
        else:
            qty, unrealized, value = acct.position_pnl(self.exchange, con_id, now)
            fields = msg.pnl_single(req_id, qty, unrealized, unrealized, Decimal(0), value)
        key = tuple(fields)
        if session.pnl_sent.get(req_id) != key:
            session.pnl_sent[req_id] = key
            session.send(fields)

    def _cancel_summary(self, session: Session, f: Fields) -> None:
        session.summaries.pop(rq.versioned_int(f), None)

    def _push_account(self, notice: AccountNotice) -> None:
        """After fills: positions, account values and summaries to whoever subscribed."""
        account = self.exchange.account
        for session in list(self.sessions.values()):
            if session.positions:
                for con_id in notice.con_ids:
                    contract = self.universe.by_con_id.get(con_id)
                    if contract is None:
                        continue
                    wire = wire_contract(contract)
                    pos = self.exchange.positions.get(con_id)
                    qty = pos.qty if pos is not None else 0
                    avg = pos.avg_cost * _multiplier(wire) if pos is not None else Decimal(0)
                    session.send(msg.position(account, wire, qty, avg))
            if session.account_updates:
                self._send_account(session, download=False, con_ids=notice.con_ids)
            for req_id, model in session.multi.items():
                self._send_multi(session, req_id, model)
            for req_id, tags in session.summaries.items():
                self._send_summary(session, req_id, tags)

    # -- faults (FaultTarget) ------------------------------------------------------------------
    def drop_clients(self, client_id: int | None) -> int:
        dropped = 0
        for cid, session in list(self.sessions.items()):
            if client_id is None or cid == client_id:
                del self.sessions[cid]
                session.close(abort=True)
                dropped += 1
                log.info("fault: dropped the socket of client %d", cid)
        return dropped

    def set_connectivity(self, up: bool, *, data_lost: bool = False) -> None:
        if not up:
            self.connected_to_ib = False
            self._broadcast(1100, "Connectivity between IB and Trader Workstation has been lost.")
            self._broadcast(2103, "Market data farm connection is broken:usfarm")
            log.info("fault: connectivity to IB lost (1100)")
            return
        self.connected_to_ib = True
        if data_lost:
            text = "Connectivity between IB and Trader Workstation has been restored - data lost."
            self._broadcast(1101, text)
            for session in self.sessions.values():
                session.streams.clear()  # subscriptions are gone: clients must request again
        else:
            text = "Connectivity between IB and Trader Workstation has been restored - data "
            self._broadcast(1102, text + "maintained.")
            for session in self.sessions.values():
                for stream in session.streams.values():
                    stream.sent.clear()  # resume with a full picture
        self._broadcast(2104, "Market data farm connection is OK:usfarm")
        log.info("fault: connectivity to IB restored (%s)", 1101 if data_lost else 1102)

    def _broadcast(self, code: int, text: str) -> None:
        for session in self.sessions.values():
            session.error(-1, code, text)

    def send_order_error(self, client_id: int, order_id: int, code: int, text: str) -> bool:
        session = self.sessions.get(client_id)
        if session is None:
            return False
        session.error(order_id, code, text)
        log.info("fault: error %d sent about order %d of client %d", code, order_id, client_id)
        return True

    def fill_order(self, client_id: int, order_id: int, qty: int | None = None) -> bool:
        notices = self.book.force_fill(client_id, order_id, self.clock.now(), qty)
        if notices is None:
            return False
        self._deliver(notices)
        return True

    def refuse_brackets(self, refuse: bool) -> None:
        self.exchange.refuse_brackets = refuse

    def liquidate(self, symbol: str) -> int:
        notices = self.book.liquidate(symbol, self.clock.now())
        sent = len({n.view.perm_id for n in notices if isinstance(n, OrderNotice)})
        self._deliver(notices)
        log.info("fault: IB liquidated the %s option positions (%d order(s))", symbol, sent)
        return sent

    def release_inactive(self) -> None:
        self._deliver(self.book.release_inactive(self.clock.now()))
        log.info("fault: the orders held Inactive are working now")

    def _order_echo(self, view: OrderView) -> OrderView:
        return replace(view, order_ref="") if self.faults.order_refs_dropped else view

    def _exec_echo(self, view: ExecView) -> ExecView:
        return replace(view, order_ref="") if self.faults.order_refs_dropped else view

    # -- persistence ---------------------------------------------------------------------------
    def save_state(self) -> None:
        self._dirty = False
        path = self.settings.state_file
        if path is None:
            return
        write_json_state(
            path,
            {
                "v": STATE_VERSION,
                "kind": "tradebot gateway sim",
                "clock": self.clock.now(),
                "follows_wall_clock": self.clock.follows_wall_clock,
                "speed": self.clock.speed,
                "exchange": self.exchange.to_state(),
                "book": self.book.to_state(),
            },
        )

    def _load_state(self) -> dict[str, Any] | None:
        path = self.settings.state_file
        if path is None:
            return None
        state = read_json_state(path)
        if state is None:
            return None
        if state.get("kind") != "tradebot gateway sim" or state.get("v") != STATE_VERSION:
            raise CorruptRecordError(Path(path), None, "not a gateway simulator state file")
        try:
            self.exchange.load_state(state["exchange"])
            self.book.load_state(state["book"])
            if state.get("clock"):
                utc_timestamp(state["clock"], "clock")
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            problem = f"unreadable simulator state ({type(exc).__name__}: {exc})"
            raise CorruptRecordError(Path(path), None, problem) from None
        return state

    def _clock_for(self, saved: dict[str, Any] | None) -> SimClock:
        """--start wins; else a saved clock that did not follow the wall clock resumes where it
        stopped; else the wall clock. Simulated time never runs backward over saved state."""
        s = self.settings
        resumed = None
        if saved is not None and saved.get("clock"):
            resumed = utc_timestamp(saved["clock"], "clock")  # checked by _load_state
        if s.start is not None:
            if resumed is not None and s.start < resumed:
                raise GatewaySimError(
                    f"--start {market_datetime(s.start, seconds=True)} is before the saved "
                    f"state's clock ({market_datetime(resumed, seconds=True)}); simulated time "
                    "cannot run backward"
                )
            return SimClock(s.start, s.speed)
        if resumed is not None and saved is not None and not saved.get("follows_wall_clock"):
            return SimClock(resumed, s.speed)
        return SimClock(None, s.speed)


def _ignore(session: Session, f: Fields) -> None:
    return None


def _cid(session: Session) -> int:
    assert session.client_id is not None  # _dispatch only lets startApi through before
    return session.client_id


def _multiplier(wire: WireContract) -> int:
    return int(wire.multiplier) if wire.multiplier else 1
