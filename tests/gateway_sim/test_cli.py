"""`tradebot gateway sim` as a real process: banner, ib_async connects, stdin faults, clean stop."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from ib_async import IB, LimitOrder, Stock

from tests.gateway_sim.conftest import Errors, until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SimProcess:
    """The simulator in its own process; stdout lines are collected by a thread."""

    def __init__(self, cwd: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
        self.stderr = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tradebot", "gateway", "sim", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, timeout: float = 20) -> str:
        return self.lines.get(timeout=timeout)

    def command(self, text: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.line()

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        """Wait for the exit (killing it after `timeout`), close every pipe: (code, stderr)."""
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.kill()
        return code, self.stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._pump_thread.join(timeout=5)
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.stderr = self.proc.stderr.read()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()


def test_cli_serves_ib_async_takes_faults_on_stdin_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    state = tmp_path / "sim-state.json"
    sim = SimProcess(
        tmp_path,
        "--port", str(port), "--start", "2025-07-01T15:00:00Z", "--speed", "0",
        "--version", "157", "--state", str(state),
    )  # fmt: skip
    try:
        banner = sim.line()
        assert f"127.0.0.1:{port}" in banner and "server version 157" in banner
        assert "DUSIM0001" in banner and "SPY" in banner and "help" in banner
        assert sim.command("reject simulated margin call").startswith("the next order")

        async def client() -> None:
            ib = IB()
            await ib.connectAsync("127.0.0.1", port, clientId=11, timeout=5, raiseSyncErrors=True)
            assert ib.client.serverVersion() == 157
            errors = Errors(ib)
            spy = Stock("SPY", "SMART", "USD")
            await ib.qualifyContractsAsync(spy)
            trade = ib.placeOrder(spy, LimitOrder("BUY", 1, 1.0))
            await until(lambda: 201 in errors.codes(), timeout=5)
            assert trade.orderStatus.status == "Cancelled"
            ib.disconnect()

        asyncio.run(asyncio.wait_for(client(), 20))
        assert sim.command("clock +1h") == "clock 2025-07-01 12:00:00 EDT frozen"
        assert sim.command("quit") == "stopping"
        assert sim.line() == "IB Gateway simulator stopped"
        code, stderr = sim.finish()
    finally:
        if sim.proc.poll() is None:
            sim.kill()
    assert code == 0, stderr
    assert "client 11 connected" in stderr
    assert state.exists()  # the account is saved for the next start


def test_control_port_takes_commands_and_sigterm_stops_with_exit_0(tmp_path: Path) -> None:
    control = _free_port()
    sim = SimProcess(tmp_path, "--port", "0", "--speed", "0", "--control-port", str(control))
    try:
        banner = sim.line()
        assert "IB Gateway simulator on 127.0.0.1:" in banner
        assert f"nc 127.0.0.1 {control}" in banner
        with socket.create_connection(("127.0.0.1", control), timeout=10) as conn:
            conn.sendall(b"md QQQ none\n")
            with conn.makefile("r", encoding="utf-8") as replies:
                reply = replies.readline()
        assert reply == "market data for QQQ: none\n"
        sim.proc.send_signal(signal.SIGTERM)
        code, stderr = sim.finish()
    finally:
        if sim.proc.poll() is None:
            sim.kill()
    assert code == 0, stderr


def test_port_in_use_is_a_one_line_usage_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sim = SimProcess(tmp_path, "--port", str(port))
        code, stderr = sim.finish()
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]


def test_other_addresses_need_unsafe_bind(tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--host", "0.0.0.0", "--port", "0")
    code, stderr = sim.finish()
    assert code == 2 and "--unsafe-bind" in stderr
