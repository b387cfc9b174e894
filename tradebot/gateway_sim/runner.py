"""Running the simulator in the foreground for `tradebot gateway sim`: banner, stdin commands,
an optional control socket, and a clean stop on Ctrl-C, SIGTERM or `quit`."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading

from tradebot.errors import UsageError
from tradebot.gateway_sim.control import execute, serve_control
from tradebot.gateway_sim.server import GatewaySim, GatewaySimError, SimSettings


def run_foreground(settings: SimSettings, control_port: int | None) -> None:
    """Serve until stopped. Start-up problems (port taken, refused address) are UsageErrors."""
    try:
        asyncio.run(_serve(settings, control_port))
    except GatewaySimError as exc:
        raise UsageError(str(exc)) from None


async def _serve(settings: SimSettings, control_port: int | None) -> None:
    sim = GatewaySim(settings)
    await sim.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    control = None
    try:
        if control_port is not None:
            try:
                control = await serve_control(sim, control_port, stop.set)
            except OSError as exc:
                raise GatewaySimError(
                    f"cannot listen for control commands on 127.0.0.1:{control_port} "
                    f"({exc.strerror or exc}); choose another --control-port"
                ) from None
        banner = sim.describe()
        if control is not None:
            banner += f" (or: nc 127.0.0.1 {control_port})"
        _say(banner)
        _read_stdin(sim, loop, stop)
        await stop.wait()
    finally:
        if control is not None:
            control.close()
            await control.wait_closed()
        await sim.stop()
        _say("IB Gateway simulator stopped")


def _read_stdin(sim: GatewaySim, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Commands typed (or piped) on stdin run on the event loop; end of input just ends them."""

    def handle(line: str) -> None:
        reply = execute(sim, line)
        if reply.text:
            _say(reply.text)
        if reply.quit:
            stop.set()

    def reader() -> None:
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(handle, line)
        except (RuntimeError, ValueError, OSError):
            return  # the loop or stdin closed while we were reading: nothing left to do

    threading.Thread(target=reader, name="gateway-sim-stdin", daemon=True).start()


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
