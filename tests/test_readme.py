"""The README's command examples, run in order as a new user types them.

Every line of every ```sh block that runs tradebot is run, top to bottom, by bash in one scratch
folder (the repository's `config.toml`, `examples/`, a `data/` folder of 1-minute bars, HOME
inside it, `tradebot` on the PATH), and must exit 0:

* a command that runs until stopped (`tradebot run` in real time, `tradebot gateway sim`) is
  started, waited for (its banner, its reconciliation) and stopped with Ctrl-C (SIGINT), which
  must exit 0 too; one marked `# terminal 1` keeps running for the rest of its block;
* a command that asks for a password on a hidden prompt gets it typed on a pseudo-terminal;
* the gateway's port 4002 is replaced by a free port (in the commands and in the rehearsal's
  config, which is the README's own `rehearsal/config.toml` block);
* lines that cannot run here are left out with their reason (`SKIPPED`): systemd and a real IB
  account (sections), tmux, `make` (this test is part of `make test`), `tail -f`.

A new kind of line fails the test until it is classified here, so the README cannot grow an
example nobody ran.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PASSWORD = "readme-override-password"

SKIPPED_SECTIONS = {
    "Run it under systemd": "needs root, systemd and a user of its own",
    "Set it up": "needs a Telegram bot's token and root for its systemd unit",
    'Trade through Interactive Brokers: `broker.kind = "ibkr"`': (
        "needs IB Gateway logged in to an account; the rehearsal against `tradebot gateway sim` "
        "runs the same commands"
    ),
}
SKIPPED_PROGRAMS = {
    "make": "`make demo` and `make test` run this test themselves",
    "tmux": "tmux only starts the same `tradebot run` in a session",
    "tail": "`tail -f` follows the log until stopped",
    "sudo": "needs root",
    "systemctl": "needs systemd",
    "systemd-analyze": "needs systemd",
    "journalctl": "needs systemd's journal",
}
# What the output of some examples must say (the others: exit 0 is the claim).
SAYS = {
    "tradebot run --start 2025-07-01": "trade(s) closed",
    "tradebot journal": "Closed trades",
    "tradebot phase status": "not counted",
    "tradebot --logs replay run --start 2025-07-01 --until 2025-07-01T12:00 --symbols SPY": (
        "run ended at 2025-07-01 12:00 EDT"
    ),
    "tradebot --logs bars run --bars data/ --symbols SPY": "run ended at 2025-07-04",
    "tradebot --config rehearsal/config.toml gateway test": "ok",
}


@dataclass
class Example:
    command: str
    section: str
    block: int
    terminal_1: bool


def examples() -> list[Example]:
    """Every command line of the README's ```sh blocks, with its section."""
    found: list[Example] = []
    section, in_sh, block, pending = "", False, 0, ""
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("## ") or line.startswith("### "):
            section = line.lstrip("#").strip()
        if line.startswith("```"):
            in_sh = line.strip() == "```sh" and not in_sh
            block += 1
            continue
        if not in_sh or not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = pending + line
        pending = ""
        command = re.split(r"\s{2,}#\s|\s+#\s(?=[a-z])", text, maxsplit=1)[0].strip()
        found.append(Example(command, section, block, "# terminal 1" in text))
    return found


def _toml_block_after(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("```toml", text.index(marker)) + len("```toml\n")
    return text[start : text.index("```", start)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Scratch:
    root: Path
    env: dict[str, str]
    port: int


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    root = tmp_path / "tradebot"
    root.mkdir()
    shutil.copy(ROOT / "config.toml", root / "config.toml")
    shutil.copytree(ROOT / "examples", root / "examples")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "tradebot").symlink_to(Path(sys.executable).with_name("tradebot"))
    data = root / "data"
    data.mkdir()
    spy = (ROOT / "tests" / "data" / "synthetic_spy_1min.csv").read_text(encoding="utf-8")
    (data / "SPY.csv").write_text(spy, encoding="utf-8")
    (data / "QQQ.csv").write_text(_scaled(spy, 0.8), encoding="utf-8")
    port = _free_port()
    rehearsal = root / "rehearsal"
    rehearsal.mkdir()
    config = _toml_block_after("`rehearsal/config.toml`").replace("4002", str(port))
    (rehearsal / "config.toml").write_text(config, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    env |= {
        "PATH": f"{bin_dir.resolve()}:{env.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "PW": PASSWORD,
        "COLUMNS": "80",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return Scratch(root, env, port)


def _scaled(csv: str, factor: float) -> str:
    """Another symbol's bars: the same minutes, prices scaled (still valid bars)."""
    lines = csv.splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        ts, *prices, volume = line.split(",")
        out.append(",".join([ts, *(f"{float(p) * factor:.2f}" for p in prices), volume]))
    return "\n".join(out) + "\n"


def _runs_until_stopped(command: str) -> bool:
    words = command.split()
    if "gateway" in words and "sim" in words:
        return True
    if "run" not in words:
        return False
    return not {"--start", "--bars", "--once"} & set(words)


def _asks_for_a_password(command: str) -> bool:
    return ("set-password" in command or "--force" in command) and "--password-stdin" not in command


class Background:
    def __init__(self, command: str, scratch: Scratch, log: Path) -> None:
        self.command = command
        self.log = log
        self.handle = open(log, "w", encoding="utf-8")  # noqa: SIM115
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=scratch.root,
            env=scratch.env,
            stdin=subprocess.DEVNULL,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        ready = "IB Gateway simulator on" if " sim" in self.command else "reconciled"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready in self.log.read_text(encoding="utf-8", errors="replace"):
                return
            assert self.process.poll() is None, f"{self.command} stopped: {self._output()}"
            time.sleep(0.1)
        raise AssertionError(f"{self.command} never got ready: {self._output()}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.handle.close()
        assert code == 0, f"{self.command} exited {code} on Ctrl-C: {self._output()}"

    def _output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


def _with_a_terminal(command: str, scratch: Scratch) -> tuple[int, str]:
    """Run `command` on a pseudo-terminal, typing the password at each hidden prompt."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=scratch.root,
        env=scratch.env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen, buffer = "", ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096).decode("utf-8", "replace")
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            buffer += chunk
            if re.search(r"(?i)(password|confirmation)[^\n]*: $", buffer):
                os.write(master, (PASSWORD + "\n").encode())
                buffer = ""
        elif process.poll() is not None:
            break
    code = process.wait(timeout=30)
    os.close(master)
    return code, seen


def test_the_readme_examples_run_in_order(scratch: Scratch) -> None:
    ran, skipped = 0, []
    background: list[Background] = []
    block = -1
    try:
        for n, example in enumerate(examples()):
            if example.block != block:
                for process in reversed(background):
                    process.stop()
                background, block = [], example.block
            command = example.command.replace("4002", str(scratch.port))
            program = command.split()[0]
            reason = SKIPPED_SECTIONS.get(example.section) or SKIPPED_PROGRAMS.get(program)
            if reason:
                skipped.append(f"{example.command}: {reason}")
                continue
            assert "tradebot" in command, f"unclassified README example: {example.command}"
            if _runs_until_stopped(command):
                process = Background(command, scratch, scratch.root.parent / f"bg-{n}.log")
                process.wait_ready()
                if example.terminal_1:
                    background.append(process)
                else:
                    process.stop()
                ran += 1
                continue
            if _asks_for_a_password(command):
                code, output = _with_a_terminal(command, scratch)
                assert code == 0, f"{example.command} exited {code}: {output}"
                ran += 1
                continue
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=scratch.root,
                env=scratch.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, (
                f"README example `{example.command}` ({example.section}) exited "
                f"{done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
            expected = SAYS.get(example.command)
            if expected:
                said = " ".join(done.stdout.split())
                assert expected in said, f"{example.command}: {expected!r} not in {said[:500]}"
            ran += 1
    finally:
        for process in reversed(background):
            process.stop()
    assert ran >= 25, f"only {ran} README examples ran"
    # What the sequence left behind is what the README says it leaves.
    report = scratch.root.parent / "bt-july"
    assert (report / "report.html").exists() and (report / "trades.csv").exists()
    assert '"summary"' in (scratch.root / "july.json").read_text(encoding="utf-8")
    assert all(": " in why for why in skipped)
