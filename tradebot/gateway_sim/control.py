"""Text commands for the operator: the same faults the Python API offers, one per line.

`tradebot gateway sim` reads them from its standard input and, with `--control-port`, from a
loopback socket (`nc 127.0.0.1 PORT`), so a rehearsal in one terminal can be disturbed from
another. Every command answers with one line (several for `help` and `status`).

Why one module: it is a table of commands, each a line that parses its words and calls one fault
of the Python API; splitting the table would only scatter the one list `help` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from tradebot.gateway_sim.clock import check_moment, check_speed, parse_moment
from tradebot.gateway_sim.faults import TIF_PRESET_CODE, TIF_PRESET_TEXT, Permission
from tradebot.gateway_sim.server import GatewaySim

log = logging.getLogger("tradebot.gateway_sim")

HELP = """\
commands (one per line):
  status                          clients, clock, account, armed faults
  drop [CLIENT]                   close a client's socket (every client without CLIENT)
  lost                            connectivity to IB lost: error 1100, market data pauses
  restore [data-lost]             connectivity back: 1102, or 1101 (subscriptions lost)
  pacing [N]                      the next N historical requests get error 162
  reject [REASON...]              the next order is rejected with error 201
  notice [CODE [TEXT...]]         informational error after the next order (default 10349)
  md SYMBOL|* live|delayed|none [options]  market data permission (delayed: 10167, none:
                                  354); with 'options', for the symbol's options only
  readonly on|off                 the Gateway's Read-Only API: every order gets 321
  stale [SYMBOL|*]                quotes stop moving; fresh [SYMBOL|*] undoes it
  cancel-race [N]                 the next cancel finds the order filled (10148)
  rollback-ids [N]                the next connect is told nextValidId N (default 1)
  fill CLIENT ORDER               fill a working order now
  fill-offline CLIENT ORDER       drop the client, then fill its order
  error CLIENT ORDER CODE TEXT    send an error about an order
  brackets refuse|accept          refuse orders with a parent (201)
  refs drop|keep                  orderRef missing from order and execution reports
  executions silent|answer        reqExecutions never answered (some Gateway builds)
  positions|open-orders|completed-orders silent|answer
                                  reqPositions, reqAllOpenOrders or reqCompletedOrders
                                  never answered
  inactive [N] / release          the next N orders are held Inactive / start working
  liquidate SYMBOL                IB sells the account's SYMBOL options itself
  clock [set ISO | +30m | speed X]  show, set, advance the simulated clock, or its speed
  clear                           disarm every fault
  quit                            stop the simulator"""


PERMISSIONS: dict[str, Permission] = {"live": "live", "delayed": "delayed", "none": "none"}


@dataclass(frozen=True)
class Reply:
    text: str
    quit: bool = False


class CommandError(Exception):
    pass


MAX_LINE = 4096  # characters of one command line
MAX_REPLY_QUOTE = 120  # characters of a bad value an error repeats
MAX_ID = 2**31 - 1  # IB's order and client ids are 32-bit
MAX_COUNT = 1_000_000
MAX_CODE = 99_999


def execute(sim: GatewaySim, line: str) -> Reply:
    """Run one command line; a problem is answered as 'error: …', never raised (a bad value
    never changes anything, and never closes the control connection)."""
    if len(line) > MAX_LINE:
        return Reply(f"error: a command line is at most {MAX_LINE} characters")
    try:
        words = shlex.split(line)
    except ValueError as exc:
        return Reply(f"error: {exc}")
    if not words:
        return Reply("")
    name, args = words[0].lower(), words[1:]
    command = COMMANDS.get(name)
    if command is None:
        return Reply(f"error: unknown command {_quote(name)}; type 'help'")
    try:
        reply = command(sim, args)
    except (CommandError, ValueError, ArithmeticError) as exc:
        return Reply(f"error: {_short(str(exc))}")
    except Exception as exc:  # a bug: said, logged, and the simulator goes on
        log.exception("control: %s failed", name)
        return Reply(f"error: {name} failed ({type(exc).__name__}); see the simulator's log")
    if name not in ("help", "status", "clock"):
        log.info("control: %s -> %s", line.strip(), reply.text)
    return reply


def _short(text: str) -> str:
    return text if len(text) <= 2 * MAX_REPLY_QUOTE else text[: 2 * MAX_REPLY_QUOTE] + "…"


def _quote(value: str) -> str:
    return repr(value if len(value) <= MAX_REPLY_QUOTE else value[:MAX_REPLY_QUOTE] + "…")


def _whole(text: str, what: str, low: int, high: int) -> int:
    """A whole number in low … high, from at most 12 digits (never a 5,000-digit one)."""
    body = text[1:] if text[:1] == "-" else text
    if not body.isdigit() or len(body) > 12 or not low <= int(text) <= high:
        raise CommandError(f"{what} {_quote(text)} is not a whole number from {low} to {high}")
    return int(text)


def _count(args: list[str], default: int = 1) -> int:
    if not args:
        return default
    return _whole(args[0], "the count", 1, MAX_COUNT)


def _ids(args: list[str], usage: str) -> tuple[int, int]:
    if len(args) < 2:
        raise CommandError(f"usage: {usage}")
    return _whole(args[0], "client", -1, MAX_ID), _whole(args[1], "order", -1, MAX_ID)


def _help(sim: GatewaySim, args: list[str]) -> Reply:
    return Reply(HELP)


def _status(sim: GatewaySim, args: list[str]) -> Reply:
    now = sim.clock.now()
    clients = ", ".join(f"{cid} (v{s.version})" for cid, s in sorted(sim.sessions.items()))
    ex = sim.exchange
    lines = [
        f"clock {sim.clock.describe()}; IB connectivity {'up' if sim.connected_to_ib else 'LOST'}",
        f"clients: {clients or 'none'}",
        f"account {ex.account}: cash {ex.cash:.2f}, net liquidation "
        f"{ex.net_liquidation(now):.2f}, {len(ex.positions)} position(s), "
        f"{len(ex.working_orders())} working order(s), {len(sim.book.held)} held",
        "faults: " + ("; ".join(sim.faults.describe()) or "none armed"),
    ]
    return Reply("\n".join(lines))


def _drop(sim: GatewaySim, args: list[str]) -> Reply:
    client = _whole(args[0], "client", -1, MAX_ID) if args else None
    count = sim.faults.drop_connections(client)
    return Reply(f"dropped {count} connection(s)")


def _lost(sim: GatewaySim, args: list[str]) -> Reply:
    sim.faults.connectivity_lost()
    return Reply("sent 1100 (connectivity lost) to every client")


def _restore(sim: GatewaySim, args: list[str]) -> Reply:
    lost = bool(args) and args[0].lower() in ("data-lost", "lost", "1101")
    sim.faults.connectivity_restored(data_lost=lost)
    return Reply(f"sent {1101 if lost else 1102} (connectivity restored) to every client")


def _pacing(sim: GatewaySim, args: list[str]) -> Reply:
    n = _count(args)
    sim.faults.pace_historical(n)
    return Reply(f"the next {n} historical request(s) get error 162")


def _reject(sim: GatewaySim, args: list[str]) -> Reply:
    reason = " ".join(args) or "insufficient margin (simulated)"
    sim.faults.reject_next_order(reason)
    return Reply(f"the next order is rejected with 201: {reason}")


def _notice(sim: GatewaySim, args: list[str]) -> Reply:
    code = _whole(args[0], "the code", 0, MAX_CODE) if args else TIF_PRESET_CODE
    text = " ".join(args[1:]) or (TIF_PRESET_TEXT if code == TIF_PRESET_CODE else "Warning")
    sim.faults.notice_next_order(code, text)
    return Reply(f"the next accepted order gets error {code}: {text}")


def _md(sim: GatewaySim, args: list[str]) -> Reply:
    options = len(args) == 3 and args[2].lower() == "options"
    if (
        len(args) not in (2, 3)
        or args[1].lower() not in PERMISSIONS
        or (len(args) == 3 and not options)
    ):
        raise CommandError("usage: md SYMBOL|* live|delayed|none [options]")
    permission = PERMISSIONS[args[1].lower()]
    if options:
        sim.faults.option_data_permission(args[0], permission)
        return Reply(f"market data for {args[0].upper()} options: {permission}")
    sim.faults.market_data_permission(args[0], permission)
    return Reply(f"market data for {args[0].upper()}: {permission}")


def _stale(sim: GatewaySim, args: list[str]) -> Reply:
    symbol = args[0] if args else "*"
    sim.faults.stale_quotes(symbol, since=sim.clock.now())
    return Reply(f"quotes for {symbol.upper()} are frozen from now on")


def _fresh(sim: GatewaySim, args: list[str]) -> Reply:
    symbol = args[0] if args else "*"
    sim.faults.fresh_quotes(symbol)
    return Reply(f"quotes for {symbol.upper()} move again")


def _cancel_race(sim: GatewaySim, args: list[str]) -> Reply:
    n = _count(args)
    sim.faults.fill_before_next_cancel(n)
    return Reply(f"the next {n} cancel(s) race a fill (10148)")


def _rollback(sim: GatewaySim, args: list[str]) -> Reply:
    to = _whole(args[0], "nextValidId", 1, MAX_ID) if args else 1
    sim.faults.roll_back_next_valid_id(to)
    return Reply(f"the next connection is told nextValidId {to}")


def _fill(sim: GatewaySim, args: list[str]) -> Reply:
    client, order = _ids(args, "fill CLIENT ORDER")
    if not sim.faults.fill_order(client, order):
        raise CommandError(f"client {client} has no working order {order}")
    return Reply(f"filled order {order} of client {client}")


def _fill_offline(sim: GatewaySim, args: list[str]) -> Reply:
    client, order = _ids(args, "fill-offline CLIENT ORDER")
    if sim.book.order(client, order) is None:
        raise CommandError(f"client {client} has no order {order}")
    filled = sim.faults.fill_while_disconnected(client, order)
    state = "filled" if filled else "not filled (not working)"
    return Reply(f"dropped client {client}; order {order} {state}")


def _error(sim: GatewaySim, args: list[str]) -> Reply:
    client, order = _ids(args, "error CLIENT ORDER CODE TEXT")
    if len(args) < 4:
        raise CommandError("usage: error CLIENT ORDER CODE TEXT")
    code = _whole(args[2], "the code", 0, MAX_CODE)
    text = " ".join(args[3:])
    if not sim.faults.order_error(client, order, code, text):
        raise CommandError(f"client {client} is not connected")
    return Reply(f"sent error {args[2]} about order {order} to client {client}")


def _brackets(sim: GatewaySim, args: list[str]) -> Reply:
    if not args or args[0].lower() not in ("refuse", "accept"):
        raise CommandError("usage: brackets refuse|accept")
    refuse = args[0].lower() == "refuse"
    sim.faults.refuse_brackets(refuse)
    return Reply("orders with a parent are " + ("refused (201)" if refuse else "accepted"))


def _refs(sim: GatewaySim, args: list[str]) -> Reply:
    if not args or args[0].lower() not in ("drop", "keep"):
        raise CommandError("usage: refs drop|keep")
    drop = args[0].lower() == "drop"
    sim.faults.drop_order_refs(drop)
    return Reply("orderRef is " + ("dropped from reports" if drop else "echoed again"))


def _unanswered(request: str, name: str) -> Callable[[GatewaySim, list[str]], Reply]:
    def command(sim: GatewaySim, args: list[str]) -> Reply:
        if not args or args[0].lower() not in ("silent", "answer"):
            raise CommandError(f"usage: {request} silent|answer")
        silent = args[0].lower() == "silent"
        sim.faults.leave_unanswered(request, silent)
        return Reply(f"{name} is " + ("left unanswered" if silent else "answered again"))

    return command


def _inactive(sim: GatewaySim, args: list[str]) -> Reply:
    count = _count(args)
    sim.faults.inactive_next(count)
    return Reply(f"the next {count} order(s) are held Inactive until 'release'")


def _release(sim: GatewaySim, args: list[str]) -> Reply:
    sim.faults.release_inactive()
    return Reply("orders held Inactive are working now")


def _readonly(sim: GatewaySim, args: list[str]) -> Reply:
    if not args or args[0].lower() not in ("on", "off"):
        raise CommandError("usage: readonly on|off")
    on = args[0].lower() == "on"
    sim.faults.set_read_only_api(on)
    return Reply("Read-Only API " + ("on: every order gets 321" if on else "off"))


def _liquidate(sim: GatewaySim, args: list[str]) -> Reply:
    if len(args) != 1:
        raise CommandError("usage: liquidate SYMBOL")
    count = sim.faults.liquidate(args[0])
    return Reply(f"IB liquidation: {count} order(s) for {args[0].upper()} options")


def _clock(sim: GatewaySim, args: list[str]) -> Reply:
    if not args:
        return Reply(f"clock {sim.clock.describe()}")
    if args[0] == "set" and len(args) == 2:
        sim.set_time(check_moment(parse_moment(args[1], sim.market.calendar)))
    elif args[0] == "speed" and len(args) == 2:
        try:
            speed = float(args[1]) if len(args[1]) <= 32 else float("nan")
        except ValueError:
            raise CommandError(f"speed {_quote(args[1])} is not a number") from None
        sim.clock.set_speed(check_speed(speed))
    elif args[0].startswith("+") and len(args) == 1:
        sim.advance(parse_step(args[0][1:]))
    else:
        raise CommandError("usage: clock [set ISO | +30m | speed X]")
    return Reply(f"clock {sim.clock.describe()}")


def _clear(sim: GatewaySim, args: list[str]) -> Reply:
    sim.faults.clear()
    return Reply("every fault disarmed")


def _quit(sim: GatewaySim, args: list[str]) -> Reply:
    return Reply("stopping", quit=True)


COMMANDS: dict[str, Callable[[GatewaySim, list[str]], Reply]] = {
    "help": _help,
    "?": _help,
    "status": _status,
    "drop": _drop,
    "lost": _lost,
    "restore": _restore,
    "pacing": _pacing,
    "reject": _reject,
    "notice": _notice,
    "md": _md,
    "stale": _stale,
    "fresh": _fresh,
    "cancel-race": _cancel_race,
    "rollback-ids": _rollback,
    "fill": _fill,
    "fill-offline": _fill_offline,
    "error": _error,
    "brackets": _brackets,
    "refs": _refs,
    "executions": _unanswered("executions", "reqExecutions"),
    "positions": _unanswered("positions", "reqPositions"),
    "open-orders": _unanswered("open-orders", "reqAllOpenOrders (and reqOpenOrders)"),
    "completed-orders": _unanswered("completed-orders", "reqCompletedOrders"),
    "readonly": _readonly,
    "inactive": _inactive,
    "release": _release,
    "liquidate": _liquidate,
    "clock": _clock,
    "clear": _clear,
    "quit": _quit,
    "exit": _quit,
}


def parse_step(text: str) -> timedelta:
    """`+90s`, `+30m`, `+2h`, `+1d` (without the +): at most 100 years in one step."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or len(text) > 13:
        raise ValueError(f"{_quote(text)} is not a step like 90s, 30m, 2h or 1d")
    seconds = int(text[:-1]) * units[text[-1]]
    if seconds > 100 * 366 * 86400:
        raise ValueError(f"{_quote(text)} is more than 100 years; use clock set")
    return timedelta(seconds=seconds)


async def serve_control(sim: GatewaySim, port: int, on_quit: Callable[[], None]) -> asyncio.Server:
    """A loopback line server for the same commands (`nc 127.0.0.1 PORT`)."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = execute(sim, line.decode("utf-8", errors="replace"))
                writer.write((reply.text + "\n").encode("utf-8"))
                await writer.drain()
                if reply.quit:
                    on_quit()
                    break
        except ValueError:  # a line beyond the reader's 64 KiB limit: said, then closed
            with contextlib.suppress(ConnectionError):
                writer.write(f"error: a command line is at most {MAX_LINE} characters\n".encode())
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(client, "127.0.0.1", port)
