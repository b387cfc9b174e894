"""The connection to IB Gateway: one ib_async `IB` per connection, owned by the event loop.

* **Connect**: the handshake through ib_async, then tradebot's own start-up requests (every
  client's open orders, completed orders, positions, account values, executions), each bounded
  by `broker.timeout_s`. Some Gateway builds never answer one of them (reqExecutions:
  ib-api-reloaded/ib_async#54, #82), and ib_async's own sync would then fail the connect
  (`raiseSyncErrors=True`) or wait its full timeout for nothing: here a missing answer makes the
  connection *degraded* — entries wait, with their own message, until the answer comes and the
  loop has reconciled again, while exits, stops and the flatten keep working. Then the checks
  that keep real money safe: the account (one, or `broker.account`), paper vs live
  against `trading.mode`, a gateway clock only from the simulator, the clock skew.
* **Our reading of messages**: a `Wrapper` subclass hands every order message, execution,
  commission and error to the `OrderTracker` (and to `codes.classify`) before ib_async's own
  handling, which stays in place for request futures and tickers but is never trusted for an
  order's status.
* **Reconnect** after a dropped socket with capped exponential backoff and the same client id
  (326 while the gateway still holds the old socket is retried, and named clearly); each
  successful (re)connection bumps `generation`, and so does a resynchronisation after IB's
  connectivity returns (1101/1102), so the loop reconciles again before any entry.
* **Entries wait** while disconnected, during an 1100 outage, while re-reading orders after it,
  inside the configured gateway restart window, and while the clocks disagree.

Why one module: connect, the degraded state, reconnect and the start-up requests share one ib_async
`IB` object and its event handlers, and their order is the safety argument (no entry before a
reconcile); split, that order would be spread over files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar

from ib_async import IB, Client, CommissionReport, Contract, Order, OrderState, Wrapper
from ib_async import Execution as IbExecutionMsg
from ib_async.ib import StartupFetchNONE
from ib_async.wrapper import RequestError

from tradebot.brokers.base import BrokerError
from tradebot.brokers.ibkr import codes, mapping
from tradebot.brokers.ibkr.ids import OrderIds
from tradebot.brokers.ibkr.settings import (
    MAX_CLOCK_SKEW_S,
    IbkrSettings,
    is_paper_account,
    is_simulator_account,
)
from tradebot.brokers.ibkr.tracker import IbOrder, OrderTracker
from tradebot.core.market_time import market_clock, market_datetime
from tradebot.core.ticks import TickLadder
from tradebot.errors import ConfigError, GatewayUnreachableError, RefusedError, TradebotError

log = logging.getLogger("tradebot.ibkr")

T = TypeVar("T")
Notify = Callable[[str, str], None]
State = Literal["idle", "connected", "reconnecting", "closed"]
MAX_REQUEST_ERRORS = 500
RETRY_MISSING = timedelta(seconds=60)  # how often unanswered start-up requests are asked again
# The start-up requests by the name a missing answer is known by.
POSITIONS = "the positions"
OPEN_ORDERS = "the open orders of every client"
COMPLETED_ORDERS = "the completed orders"
EXECUTIONS = "the executions"


class _RelayFilter(logging.Filter):
    """Drops ib_async's own relay of IB's error messages ("Error 162, reqId 7: …") and its
    "Canceled order" guesses (10349 and the like: the order is still working). tradebot logs
    each of them once, read by code, in its own words (`IbConnection._on_error`)."""

    RELAY = re.compile(r"^(Error|Warning) -?\d+, reqId -?\d+: |^Canceled order: ")

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.RELAY.match(str(record.msg))


def _quiet_ib_async_relays() -> None:
    wrapper_log = logging.getLogger("ib_async.wrapper")
    if not any(isinstance(f, _RelayFilter) for f in wrapper_log.filters):
        wrapper_log.addFilter(_RelayFilter())


class IbRequestError(BrokerError):
    """IB answered a request with an error (`code`, `kind` as `codes.classify` reads it)."""

    def __init__(self, message: str, code: int, text: str) -> None:
        super().__init__(message)
        self.code = code
        self.text = text
        self.kind = codes.classify(code, text)


class _TrackingWrapper(Wrapper):
    """ib_async's wrapper, with tradebot's own reading of every order message and error."""

    def __init__(self, ib: IB, conn: IbConnection) -> None:
        super().__init__(ib)
        self._conn = conn

    def nextValidId(self, reqId: int) -> None:
        self._conn.hook("next_valid_id", reqId)
        super().nextValidId(reqId)

    def openOrder(
        self, orderId: int, contract: Contract, order: Order, orderState: OrderState
    ) -> None:
        super().openOrder(orderId, contract, order, orderState)
        if not order.whatIf:
            self._conn.hook("open_order", contract, order, orderState, False)

    def completedOrder(self, contract: Contract, order: Order, orderState: OrderState) -> None:
        super().completedOrder(contract, order, orderState)
        self._conn.hook("open_order", contract, order, orderState, True)

    def orderStatus(
        self,
        orderId: int,
        status: str,
        filled: float,
        remaining: float,
        avgFillPrice: float,
        permId: int,
        parentId: int,
        lastFillPrice: float,
        clientId: int,
        whyHeld: str,
        mktCapPrice: float = 0.0,
    ) -> None:
        self._conn.hook(
            "order_status", orderId, status, filled, avgFillPrice, permId, parentId, clientId
        )
        if (clientId, orderId) in self.trades or permId in self.permId2Trade:
            super().orderStatus(
                orderId,
                status,
                filled,
                remaining,
                avgFillPrice,
                permId,
                parentId,
                lastFillPrice,
                clientId,
                whyHeld,
                mktCapPrice,
            )

    def execDetails(self, reqId: int, contract: Contract, execution: IbExecutionMsg) -> None:
        super().execDetails(reqId, contract, execution)
        self._conn.hook("execution", contract, execution)

    def commissionReport(self, commissionReport: CommissionReport) -> None:
        super().commissionReport(commissionReport)
        self._conn.hook("commission", commissionReport)

    def error(
        self, reqId: int, errorCode: int, errorString: str, advancedOrderRejectJson: str = ""
    ) -> None:
        self._conn.hook("error", reqId, errorCode, errorString)
        super().error(reqId, errorCode, errorString, advancedOrderRejectJson)


class _IB(IB):
    """ib_async's IB with our wrapper (this is IB.__init__ of ib_async 2.1, wrapper swapped)."""

    def __init__(self, conn: IbConnection) -> None:
        self._createEvents()  # type: ignore[no-untyped-call]
        self.wrapper = _TrackingWrapper(self, conn)
        self.client = Client(self.wrapper)  # type: ignore[no-untyped-call]
        # The execution's time as IB wrote it: ib_async reads a time without a zone
        # ("20261120-20:00:06", UTC) in this machine's zone (ib_async#230, ib_insync#671), so
        # tradebot keeps the text and reads it itself (mapping.parse_ib_time).
        decoder = self.client.decoder
        read_execution = decoder.handlers[11]

        def exec_details(fields: list[str]) -> None:
            if len(fields) > 15:
                conn.raw_exec_times[str(fields[14])] = str(fields[15])
                if len(conn.raw_exec_times) > MAX_REQUEST_ERRORS:
                    conn.raw_exec_times.pop(next(iter(conn.raw_exec_times)))
            read_execution(fields)

        decoder.handlers[11] = exec_details
        self.errorEvent += self._onError
        self.client.apiEnd += self.disconnectedEvent
        self._logger = logging.getLogger("ib_async.ib")
        self.RaiseRequestErrors = True  # a failed request raises, it never looks empty


class IbConnection:
    def __init__(
        self,
        settings: IbkrSettings,
        tracker: OrderTracker,
        ids: OrderIds | None,
        now: Callable[[], datetime],
        *,
        notify: Notify | None = None,
        on_gateway_time: Callable[[datetime], None] | None = None,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.tracker = tracker
        self.ids = ids
        self.now = now
        self.wall = wall or (lambda: datetime.now(UTC))
        self.notify = notify or (lambda event, message: None)
        self.on_gateway_time = on_gateway_time
        self.ib: _IB | None = None
        self.state: State = "idle"
        self.generation = 0
        self.attempts = 0
        self.lost_at: datetime | None = None
        self.outage_since: datetime | None = None
        self.resyncing = False
        self.skew_s: float | None = None
        self.gateway_time: datetime | None = None
        self.server_version = 0
        self.accounts: list[str] = []
        self.account = ""
        self.traded_account: str | None = None  # the account of this run's first connection
        self.server_next_id = 0
        self.ticks: dict[int, Decimal] = {}  # conId → minTick, from contract details
        self.rules: dict[int, TickLadder] = {}  # market rule id → its price increments
        self.ladders: dict[int, TickLadder] = {}  # conId → its market rule's increments
        self.request_errors: dict[int, tuple[int, str]] = {}
        self.on_data_lost: list[Callable[[], None]] = []
        self.last_problem = ""
        self.missing: dict[str, str] = {}  # start-up requests the Gateway has not answered
        self.raw_exec_times: dict[str, str] = {}  # execId → the time text IB sent
        self._retried_at: datetime | None = None
        self._connect_errors: list[tuple[int, str]] = []
        self._refused = asyncio.Event()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._restore_task: asyncio.Task[None] | None = None
        self._retry_task: asyncio.Task[None] | None = None
        # ib_async keeps ONE result slot for reqAllOpenOrders/reqOpenOrders ('openOrders'): a
        # second request started before the first's openOrderEnd empties the first's list and
        # is resolved by the first's end with only part of IB's orders. Every open-order
        # request of this connection waits its turn here (`open_orders`).
        self._open_orders_lock = asyncio.Lock()
        self._unconfirmed: list[IbOrder] = []  # sent, unacknowledged, not yet found or forgotten
        _quiet_ib_async_relays()

    # -- life cycle ----------------------------------------------------------------------------
    def is_connected(self) -> bool:
        return self.state == "connected" and self.ib is not None and self.ib.isConnected()

    async def connect(self) -> None:
        """Connect once (the caller's first connection); raises a TradebotError saying why not."""
        if self.is_connected() or self.state == "reconnecting":
            return  # already there, or the reconnection task is on it
        if self.state == "closed":
            self.state = "idle"
        await self._open()

    async def close(self) -> None:
        self.state = "closed"
        for task in (self._reconnect_task, self._restore_task, self._retry_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._reconnect_task = self._restore_task = self._retry_task = None
        ib, self.ib = self.ib, None
        if ib is not None:
            ib.disconnect()

    async def _open(self) -> None:
        s = self.settings
        ib = _IB(self)
        self._connect_errors = []
        self.tracker.new_connection()
        unacknowledged = self.tracker.unacknowledged()  # sent on a connection that died
        self.server_next_id = 0
        self._refused = asyncio.Event()
        attempt = asyncio.ensure_future(
            asyncio.wait_for(
                ib.connectAsync(
                    s.host,
                    s.port,
                    clientId=s.client_id,
                    timeout=s.timeout_s,
                    readonly=s.readonly,
                    account=s.account or "",
                    # tradebot's own start-up requests follow (_after_connect), each bounded.
                    fetchFields=StartupFetchNONE,
                    raiseSyncErrors=False,
                ),
                s.timeout_s * 4,
            )
        )
        refused = asyncio.ensure_future(self._refused.wait())
        try:
            # 326 closes the socket, but ib_async would wait for its whole timeout first.
            await asyncio.wait({attempt, refused}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # closed meanwhile: leave no connection behind
            attempt.cancel()
            ib.disconnect()
            raise
        finally:
            refused.cancel()
        if not attempt.done():
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            ib.disconnect()
            raise GatewayUnreachableError(self._unreachable(ConnectionError("326")))
        try:
            attempt.result()
        except (OSError, ConnectionError, TimeoutError, RequestError) as exc:
            ib.disconnect()
            raise GatewayUnreachableError(self._unreachable(exc)) from None
        try:
            await self._after_connect(ib)
        except BrokerError as exc:  # the start-up requests failed: not a usable connection
            ib.disconnect()
            raise GatewayUnreachableError(
                f"IB Gateway at {s.address} accepted the connection but did not answer its "
                f"start-up requests ({exc.message}); check that it is logged in and its farms "
                "are connected"
            ) from None
        except BaseException:
            ib.disconnect()
            raise
        self._unconfirmed = []
        if not s.readonly:
            if self.order_lists_complete():
                self._forget_lost(ib, unacknowledged)
            else:  # absent from a list IB did not send proves nothing: decided once it does
                self._unconfirmed = unacknowledged
        self.ib = ib
        self.state = "connected"
        self.attempts = 0
        self.lost_at = None
        self.outage_since = None
        self.generation += 1
        ib.disconnectedEvent += self._on_disconnected
        log.info(
            "connected to IB Gateway %s as client %d (server version %d, account %s, "
            "generation %d)",
            s.address,
            s.client_id,
            self.server_version,
            self.account,
            self.generation,
        )

    def _forget_lost(self, ib: _IB, unacknowledged: list[IbOrder]) -> None:
        """Orders sent on the last connection that IB never acknowledged, and that its order
        lists (every client's open orders, today's completed orders, read at this connect)
        do not have: they died with the socket. They are forgotten, never sent again: the loop
        closes them as a send that never arrived. A cancel for each id removes whatever the
        Gateway may still hold unsent (a bracket's transmit=False parent whose last leg was
        lost) — unless IB lists another order under that id, which is left alone."""
        for order in unacknowledged:
            holder = self.tracker.live_ids.get((order.client_id, order.order_id))
            if holder is order or order.status != "pending":
                continue  # IB listed it (even as still pending at the Gateway): adopted
            self.tracker.forget(order)
            log.warning(
                "%s (order id %d) was never acknowledged and IB's order lists do not have it: "
                "the connection dropped with it in flight; it is not sent again",
                order.order_ref,
                order.order_id,
            )
            if holder is None:
                with contextlib.suppress(ConnectionError):
                    ib.client.cancelOrder(order.order_id, "")  # type: ignore[no-untyped-call]

    async def _after_connect(self, ib: _IB) -> None:
        s = self.settings
        self.server_version = ib.client.serverVersion()
        self.accounts = list(ib.client.getAccounts())
        self.account = self._choose_account()
        if not s.readonly:
            self._check_account()
            if self.traded_account is None:
                self.traded_account = self.account
            elif self.account != self.traded_account:
                # The Gateway was logged in to another account meanwhile: this run's journal,
                # positions and orders belong to the first one. Never trade the other.
                raise RefusedError(
                    f"the gateway at {s.address} is now logged in to {self.account}, but this "
                    f"run trades {self.traded_account}; log the gateway back in to "
                    f"{self.traded_account}, or stop tradebot and set broker.account"
                )
        if self.ids is not None:
            # After IB rolled its next id back, ib_async numbers requests from there: keep them
            # above today's order ids, or an error about a request reads as one about an order.
            ib.client.updateReqId(self.ids.high + 1)  # type: ignore[no-untyped-call]
        await self._startup(ib)
        ib.reqMarketDataType(3 if s.market_data_type == "delayed" else 1)
        try:
            await self.refresh_clock(ib)
        except IbRequestError:
            raise
        except BrokerError as exc:
            self._note_missing("the current time", exc)

    def _choose_account(self) -> str:
        s = self.settings
        if s.account:
            if s.account not in self.accounts:
                raise ConfigError(
                    f"broker.account {s.account} is not an account of the gateway at "
                    f"{s.address} (it manages {', '.join(self.accounts) or 'none'}); fix "
                    "broker.account"
                )
            return s.account
        if len(self.accounts) == 1:
            return self.accounts[0]
        if s.readonly:
            return ""
        raise ConfigError(
            f"the gateway at {s.address} manages several accounts "
            f"({', '.join(self.accounts)}); set broker.account to the one to trade"
        )

    def _check_account(self) -> None:
        """Money safety: the account must be what `trading.mode` says, and a gateway clock
        is only ever taken from the simulator."""
        s, account = self.settings, self.account
        paper = is_paper_account(account)
        if s.trading_mode == "paper" and not paper:
            raise RefusedError(
                f"trading.mode = 'paper' but the gateway at {s.address} is logged in to {account}, "
                "a live account (real money); connect to the paper gateway (port 4002) or set "
                "trading.mode = 'live' deliberately"
            )
        if s.trading_mode == "live" and paper:
            raise RefusedError(
                f"trading.mode = 'live' but the gateway at {s.address} is logged in to the paper "
                f"account {account}; live results must come from the live account (port 4001)"
            )
        if s.clock == "gateway" and not all(is_simulator_account(a) for a in self.accounts):
            raise RefusedError(
                f"broker.clock = 'gateway' only follows `tradebot gateway sim`, but the gateway at "
                f"{s.address} manages {', '.join(self.accounts)} (an IB account); set "
                "broker.clock = 'local'"
            )

    def _startup_requests(self, ib: _IB) -> dict[str, Callable[[], Awaitable[Any]]]:
        """What a connection reads before the loop may trust it (ib_async's start-up sync, done
        here so that each missing answer is known by name)."""
        requests: dict[str, Callable[[], Awaitable[Any]]] = {POSITIONS: ib.reqPositionsAsync}
        if not self.settings.readonly:
            requests[OPEN_ORDERS] = lambda: self.open_orders(ib)
            requests[COMPLETED_ORDERS] = lambda: ib.reqCompletedOrdersAsync(False)
            if self.account:
                requests["the account values"] = lambda: ib.reqAccountUpdatesAsync(self.account)
        return requests

    async def _startup(self, ib: _IB) -> None:
        """The start-up requests, concurrently, then the executions (after every order is in,
        as ib_async does): an unanswered one is noted in `missing`, never a failed connect."""
        self.missing, self._retried_at = {}, None
        requests = self._startup_requests(ib)
        results = await asyncio.gather(
            *(self._call(ib, what, make()) for what, make in requests.items()),
            return_exceptions=True,
        )
        for what, result in zip(requests, results, strict=True):
            self._note_missing(what, result)
        try:
            await self._call(ib, EXECUTIONS, ib.reqExecutionsAsync())
        except BrokerError as exc:
            self._note_missing(EXECUTIONS, exc)
        if self.missing:
            self._retried_at = self.now()  # asked again a minute from now, not at once

    def _note_missing(self, what: str, result: object) -> None:
        if isinstance(result, IbRequestError):
            raise result  # an answer, and a refusal: the caller says so
        if isinstance(result, BrokerError):
            self.missing[what] = result.message
            log.warning(
                "IB Gateway at %s did not answer %s (%s): connected degraded, entries wait "
                "until it does; exits and protective orders keep working",
                self.settings.address,
                what,
                result.message,
            )
        elif isinstance(result, BaseException):
            raise result

    def retry_missing_soon(self) -> None:
        """`retry_missing` in the background, when it is due: the caller (the loop's sync, its
        flatten) never waits for a Gateway that may not answer."""
        if not self.missing or (self._retry_task is not None and not self._retry_task.done()):
            return
        now = self.now()
        if self._retried_at is not None and now - self._retried_at < RETRY_MISSING:
            return
        self._retry_task = asyncio.get_running_loop().create_task(self._retry_in_background())

    async def _retry_in_background(self) -> None:
        try:
            await self.retry_missing()
        except TradebotError as exc:  # a refusal of the request: said, asked again later
            log.warning("asking IB Gateway again for what it did not answer failed: %s", exc)
        except Exception:
            log.exception("asking IB Gateway again for what it did not answer failed")

    async def retry_missing(self) -> None:
        """Ask again what the Gateway did not answer at connect; once everything is in, the
        loop reconciles again (a new generation) and entries may resume."""
        running = self._retry_task
        if running is not None and not running.done() and running is not asyncio.current_task():
            await asyncio.shield(running)  # one question at a time; then ask again if due
        if not self.missing or not self.is_connected() or self.ib is None:
            return
        now = self.now()
        if self._retried_at is not None and now - self._retried_at < RETRY_MISSING:
            return
        self._retried_at = now
        ib = self.ib
        requests = self._startup_requests(ib)
        requests[EXECUTIONS] = ib.reqExecutionsAsync
        for what in list(self.missing):
            try:
                if what == "the current time":
                    await self.refresh_clock(ib)
                elif what in requests:
                    await self._call(ib, what, requests[what]())
                else:
                    continue
            except BrokerError as exc:
                self.missing[what] = exc.message
                continue
            self.answered(what)

    def order_lists_complete(self) -> bool:
        """Whether IB has sent its open and completed orders on this connection: until then an
        order missing from them may still be working, or have filled, at IB."""
        return OPEN_ORDERS not in self.missing and COMPLETED_ORDERS not in self.missing

    def answered(self, what: str) -> None:
        """`what` was answered after all: the loop reconciles with what it says (an order list:
        the orders it does not have are decided only now)."""
        if self.missing.pop(what, None) is not None:
            log.info("IB Gateway answered %s after all", what)
            if self._unconfirmed and self.order_lists_complete() and self.ib is not None:
                self._forget_lost(self.ib, self._unconfirmed)
                self._unconfirmed = []
            self.reconcile_soon(
                "every start-up request is answered now"
                if not self.missing
                else f"IB Gateway answered {what} after all"
            )

    async def refresh_clock(self, ib: _IB | None = None) -> None:
        """Ask the gateway its time: follow it (broker.clock = 'gateway') and measure the skew."""
        ib = ib or self.require()
        gateway = await self._call(ib, "the current time", ib.reqCurrentTimeAsync())
        gateway = gateway.astimezone(UTC)
        self.gateway_time = gateway
        if self.settings.clock == "gateway" and self.on_gateway_time is not None:
            self.on_gateway_time(gateway)
        # reqCurrentTime has whole seconds: up to one second is rounding, not skew.
        skew = (gateway - self.now()).total_seconds()
        self.skew_s = 0.0 if -1.0 <= skew <= 0.0 else skew
        if abs(self.skew_s) > MAX_CLOCK_SKEW_S and not self.settings.readonly:
            log.warning(
                "the gateway's clock (%s) differs from tradebot's by %+.0f s; entries wait",
                market_datetime(gateway, seconds=True),
                self.skew_s,
            )

    def _unreachable(self, exc: BaseException) -> str:
        s = self.settings
        if any(code == codes.CLIENT_ID_IN_USE for code, _ in self._connect_errors):
            return (
                f"IB Gateway at {s.address} refused client id {s.client_id}: it is already in use "
                "(error 326) by another program, or by a tradebot that stopped a moment ago and "
                "that the gateway has not let go yet; stop the other program or wait a minute, "
                "or set broker.client_id to a free number"
            )
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {s.timeout_s:g} s"
        return (
            f"cannot reach IB Gateway at {s.address} ({reason}); check that the gateway (or TWS) "
            "is running and logged in, that its API is enabled (Configure → Settings → API → "
            "Enable ActiveX and Socket Clients), the port (IB Gateway 4002 paper / 4001 live, "
            "TWS 7497 / 7496), that this machine is in its Trusted IPs, and that client id "
            f"{s.client_id} is not used by another program"
        )

    def _on_disconnected(self) -> None:
        if self.state != "connected":
            return
        self.ib = None
        self.state = "reconnecting"
        self.lost_at = self.now()
        s = self.settings
        text = (
            f"lost the connection to IB Gateway at {s.address}; reconnecting as client "
            f"{s.client_id} (new entries wait, working orders stay at IB)"
        )
        log.warning(text)
        self.notify("disconnect", text)
        self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        s = self.settings
        delay = s.backoff_initial_s
        while self.state == "reconnecting":
            await asyncio.sleep(delay)
            if self.state != "reconnecting":
                return
            self.attempts += 1
            try:
                await self._open()
            except TradebotError as exc:
                self.last_problem = exc.message
                quiet = self.in_restart_window(self.now())
                log.log(
                    logging.INFO if quiet else logging.WARNING,
                    "reconnect attempt %d failed: %s (next in %.0f s)",
                    self.attempts,
                    exc.message,
                    min(delay * 2, s.backoff_cap_s),
                )
                delay = min(delay * 2, s.backoff_cap_s)
                continue
            except Exception as exc:  # keep trying whatever happened
                log.exception("reconnect attempt %d failed unexpectedly", self.attempts)
                self.last_problem = f"{type(exc).__name__}: {exc}"
                delay = min(delay * 2, s.backoff_cap_s)
                continue
            text = f"reconnected to IB Gateway at {s.address}; reconciling before any entry"
            log.info(text)
            self.notify("reconnect", text)
            return

    # -- requests ------------------------------------------------------------------------------
    def require(self) -> _IB:
        if not self.is_connected() or self.ib is None:
            raise BrokerError(
                f"not connected to IB Gateway at {self.settings.address}"
                + (" (reconnecting)" if self.state == "reconnecting" else "")
            )
        return self.ib

    async def open_orders(self, ib: _IB) -> list[Any]:
        """reqAllOpenOrders, one at a time on this connection: ib_async resolves overlapping
        ones from one shared 'openOrders' slot (ib_async wrapper.startReq / openOrderEnd), so
        an answer could lack an order IB still holds — and a held sell "no longer listed" is
        given up (`IbOrders.confirm_held_cancels`). The request is started only once the one
        before it is over. The caller bounds the wait (`_call`)."""
        async with self._open_orders_lock:
            return await ib.reqAllOpenOrdersAsync()

    async def call(self, what: str, request: Callable[[_IB], Awaitable[T]]) -> T:
        """One request, bounded by broker.timeout_s; every failure is a BrokerError."""
        ib = self.require()
        try:
            awaitable = request(ib)
        except ConnectionError as exc:
            raise BrokerError(f"{what}: not connected to IB Gateway ({exc})") from None
        return await self._call(ib, what, awaitable)

    def throttle_delay(self) -> float:
        """Seconds before what is sent now reaches IB: ib_async queues requests beyond 45 a
        second (IB's limit is 50), and a request still in that queue has not been asked yet."""
        ib = self.ib
        if ib is None:
            return 0.0
        queued = len(getattr(ib.client, "_msgQ", ()))
        per_second = max(1, ib.client.MaxRequests) / max(0.1, ib.client.RequestsInterval)
        return queued / per_second

    async def _call(self, ib: _IB, what: str, awaitable: Awaitable[T]) -> T:
        # broker.timeout_s counts from when IB has the request, not while it waits in the
        # client's throttle queue behind others.
        timeout = self.settings.timeout_s + self.throttle_delay()
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError:
            raise BrokerError(
                f"IB Gateway did not answer {what} within {timeout:.0f} s (broker.timeout_s)"
            ) from None
        except RequestError as exc:
            raise IbRequestError(
                f"IB refused {what}: error {exc.code} {exc.message}", exc.code, exc.message
            ) from None
        except ConnectionError as exc:
            raise BrokerError(f"{what}: the connection to IB Gateway failed ({exc})") from None

    def reconcile_soon(self, why: str) -> None:
        """IB did something its answer to a request did not settle (an entry filled while its
        bracket was refused): the loop reconciles at its next step, as after a reconnection —
        that is where a position without a working stop gets its emulated legs."""
        self.generation += 1
        log.warning("%s: reconciling with IB at the next step", why)

    # -- entries -------------------------------------------------------------------------------
    def in_restart_window(self, now: datetime) -> bool:
        window = self.settings.restart_window
        return window is not None and window.contains(now)

    def entries_paused(self, now: datetime) -> str | None:
        s = self.settings
        if self.state == "reconnecting":
            since = f" at {market_clock(self.lost_at, seconds=True)}" if self.lost_at else ""
            extra = f"; last attempt: {self.last_problem}" if self.last_problem else ""
            return (
                f"the connection to IB Gateway at {s.address} was lost{since}; reconnecting "
                f"(attempt {self.attempts}){extra}"
            )
        if not self.is_connected():
            return f"not connected to IB Gateway at {s.address}"
        if self.outage_since is not None:
            return (
                "IB Gateway lost its connection to IB (error 1100) at "
                f"{market_clock(self.outage_since, seconds=True)}; entries wait until it is "
                "restored"
            )
        if self.missing:
            what = ", ".join(self.missing)
            return (
                f"connected degraded: IB Gateway at {s.address} did not answer {what} within "
                f"{s.timeout_s:g} s (some Gateway builds never answer executions requests); "
                "entries wait until it does and tradebot has reconciled — exits, stops and the "
                "flatten keep working; restarting the Gateway usually helps"
            )
        if self.resyncing:
            return "re-reading orders and fills now that IB's connectivity is restored"
        if s.restart_window is not None and s.restart_window.contains(now):
            return (
                f"inside the gateway's daily restart window ({s.restart_window.describe()}, "
                "broker.restart_window)"
            )
        if self.skew_s is not None and abs(self.skew_s) > MAX_CLOCK_SKEW_S:
            return (
                f"the gateway's clock differs from tradebot's by {self.skew_s:+.0f} s (more than "
                f"{MAX_CLOCK_SKEW_S:g} s): quotes cannot be judged fresh; fix the clock (NTP)"
                + (
                    " or, for a rehearsal against `tradebot gateway sim`, set broker.clock = "
                    "'gateway'"
                    if all(is_simulator_account(a) for a in self.accounts)
                    else ""
                )
            )
        return None

    # -- IB's messages -------------------------------------------------------------------------
    def hook(self, name: str, *args: Any) -> None:
        """Called by the wrapper for every message we read ourselves; never raises into
        ib_async's decoder (a bug here is logged, the message still reaches ib_async)."""
        try:
            getattr(self, f"_on_{name}")(*args)
        except Exception:
            log.exception("tradebot could not read IB's %s message", name)

    def _tick(self, contract: Contract) -> Decimal | None:
        return self.ticks.get(contract.conId or 0)

    def _ref(self, order_ref: str, client_id: int, order_id: int) -> str:
        """The orderRef of a report, or — when the Gateway did not echo it — the one our order
        with this id was sent with (our ids are never reused: `OrderIds`)."""
        if order_ref or self.ids is None or client_id != self.settings.client_id:
            return order_ref
        return self.ids.ref_of(order_id) if order_id > 0 else ""

    def _on_next_valid_id(self, order_id: int) -> None:
        self.server_next_id = max(self.server_next_id, order_id)

    def _on_open_order(
        self, contract: Contract, order: Order, state: OrderState, completed: bool
    ) -> None:
        report = mapping.order_report(
            contract, order, state, self._tick(contract), self.settings.zone, completed=completed
        )
        report = replace(
            report, order_ref=self._ref(report.order_ref, report.client_id, report.order_id)
        )
        self.tracker.on_order(report, self.now(), completed=completed)
        if self.ids is not None and not completed and report.order_id > 0:
            # Every client's open order ids, not only ours: IB wants new ids above every id
            # reqAllOpenOrders returned (TWS API docs, "Order Submission": next valid id).
            self.ids.observe(report.order_id)

    def _on_order_status(self, *fields: Any) -> None:
        self.tracker.on_status(mapping.status_report(*fields), self.now())

    def _on_execution(self, contract: Contract, execution: IbExecutionMsg) -> None:
        s = self.settings
        tick = self._tick(contract)
        raw = self.raw_exec_times.pop(execution.execId, None)
        report = mapping.exec_report(
            contract, execution, tick, s.zone, s.calendar, self.now(), raw_time=raw
        )
        report = replace(
            report, order_ref=self._ref(report.order_ref, report.client_id, report.order_id)
        )
        if self.tracker.on_execution(report):
            log.info(
                "execution %s: %s %d %s at %s (order_ref %r)",
                report.exec_id,
                report.side,
                report.qty,
                report.label,
                report.price,
                report.order_ref,
            )

    def _on_commission(self, report: CommissionReport) -> None:
        commission = mapping.dec(report.commission)
        if commission is not None:
            self.tracker.on_commission(report.execId, commission)

    def _on_error(self, req_id: int, code: int, text: str) -> None:
        kind = codes.classify(code, text)
        now = self.now()
        self._connect_errors.append((code, text))
        del self._connect_errors[:-20]
        if kind == "client_id_in_use":
            self._refused.set()
        if kind == "connectivity_lost":
            if self.outage_since is None:
                self.outage_since = now
                message = f"IB Gateway lost its connection to IB (error {code}): entries wait"
                log.warning(message)
                self.notify("disconnect", message)
            return
        if kind in ("restored_data_lost", "restored_data_kept"):
            lost = kind == "restored_data_lost"
            self.outage_since = None
            log.info("IB connectivity restored (%d, data %s)", code, "lost" if lost else "kept")
            if self.state == "connected":
                self._restore_task = asyncio.get_running_loop().create_task(self._restored(lost))
            return
        if req_id is None or req_id < 0:
            level = {"error": logging.WARNING, "farm_broken": logging.WARNING}.get(kind)
            log.log(level or logging.DEBUG, "IB %s %d: %s", kind, code, text)
            return
        outcome = self.tracker.on_error(req_id, code, text, now)
        if outcome is not None:
            order = outcome.order
            if outcome.effect == "rejected":
                log.warning(
                    "IB refused order %s (id %d): %d %s", order.order_ref, req_id, code, text
                )
            else:
                log.info(
                    "IB notice about order %s (id %d): %d %s; its status stays %s until IB's "
                    "order status says otherwise",
                    order.order_ref,
                    req_id,
                    code,
                    text,
                    order.status,
                )
            return
        log.log(
            logging.WARNING if kind == "error" else logging.DEBUG,
            "IB %s %d about request %d: %s",
            kind,
            code,
            req_id,
            text,
        )
        self.request_errors[req_id] = (code, text)
        if len(self.request_errors) > MAX_REQUEST_ERRORS:
            for key in list(self.request_errors)[: MAX_REQUEST_ERRORS // 2]:
                del self.request_errors[key]

    async def _restored(self, data_lost: bool) -> None:
        """After 1101/1102: resubscribe market data (1101), re-read orders, fills and
        positions, then bump the generation so the loop reconciles before any entry."""
        self.resyncing = True
        try:
            if data_lost:
                for resubscribe in list(self.on_data_lost):
                    resubscribe()
            ib = self.require()
            for what, request in (
                (OPEN_ORDERS, lambda: self.open_orders(ib)),
                (COMPLETED_ORDERS, lambda: ib.reqCompletedOrdersAsync(False)),
                (EXECUTIONS, ib.reqExecutionsAsync),
                (POSITIONS, ib.reqPositionsAsync),
            ):
                try:
                    await self._call(ib, what, request())
                except IbRequestError:
                    raise
                except BrokerError as exc:  # unanswered: unknown, asked again like at connect
                    self._note_missing(what, exc)
                    self._retried_at = self.now()
            self.generation += 1
        except (TradebotError, ConnectionError) as exc:
            # ConnectionError: the socket dropped meanwhile (ib_async raises it on send); the
            # reconnection re-reads everything anyway.
            log.warning("re-reading orders after IB's connectivity returned failed: %s", exc)
            self.generation += 1  # reconcile anyway with what we have
        finally:
            self.resyncing = False
