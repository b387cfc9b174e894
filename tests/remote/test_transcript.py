"""A whole conversation with `tradebot remote run` (a real process) through the fake Bot API,
kept as a transcript: what an operator sees on the phone. Set REMOTE_TRANSCRIPT=path to keep a
copy."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.remote.conftest import OPERATOR, STRANGER, loaded_config
from tests.remote.fake_telegram import FakeTelegram
from tests.remote.processes import journal, start_remote, stop, text_of, wait

pytestmark = pytest.mark.slow


def test_a_session_with_the_fake_server(
    tmp_path: Path, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    loaded_config(tmp_path, fake.url, "send_alerts = false\n")
    remote = start_remote(tmp_path)
    lines: list[str] = []

    def say(
        user: int, text: str, *, chat_type: str = "private", ago: float = 0, replies: int = 1
    ) -> None:
        sent = len(fake.sent)
        handled = len(journal(tmp_path, "remote_command"))
        where = "" if chat_type == "private" else f" (in a {chat_type})"
        lines.append(f"→ {'operator' if user == OPERATOR else f'user {user}'}{where}: {text}"
                     + (f"   [sent {ago:.0f} s ago]" if ago else ""))  # fmt: skip
        fake.message(user, text, chat_type=chat_type, date=time.time() - ago)
        wait(lambda: len(journal(tmp_path, "remote_command")) > handled, 10, text)
        wait(lambda: len(fake.sent) >= sent + replies, 10, f"the reply to {text}")
        for message in fake.sent[sent:]:
            who = "operator" if message["chat_id"] == OPERATOR else f"user {message['chat_id']}"
            body = message["text"].replace("\n", "\n    ")
            lines.append(f"← bot to {who}: {body}")
        if len(fake.sent) == sent:
            lines.append("← (no reply)")

    try:
        say(OPERATOR, "/help")
        say(OPERATOR, "/status")
        say(STRANGER, "/halt")
        say(OPERATOR, "/halt", chat_type="group", replies=0)
        say(OPERATOR, "/halt lunch break")
        say(OPERATOR, "/resume")
        say(OPERATOR, "/flatten")
        say(OPERATOR, "/flatten 000000")
        say(OPERATOR, "/flatten")
        code = fake.sent[-1]["text"].split("send /flatten ", 1)[1].split()[0]
        say(OPERATOR, f"/flatten {code}")
        say(OPERATOR, "/positions")
        say(OPERATOR, "/flatten", ago=120)
    finally:
        assert stop(remote) == 0, text_of(tmp_path)
    text_of(tmp_path)  # kept with the outputs the token scan reads
    lines.append("(SIGTERM) " + (tmp_path / "remote.out").read_text().strip())
    transcript = "\n".join(lines) + "\n"
    (tmp_path / "transcript.txt").write_text(transcript)
    if os.environ.get("REMOTE_TRANSCRIPT"):
        Path(os.environ["REMOTE_TRANSCRIPT"]).write_text(transcript)
    for expected in (
        "← bot to user 999888777: Refused.",
        "→ operator (in a group): /halt\n← (no reply)",
        "HALTED since",
        "/resume is not available remotely.",
        "Wrong code. Nothing done.",
        "Flatten requested",
        "commands older than 60 s are never run",
        "remote stopped: 12 update(s) handled",
    ):
        assert expected in transcript, transcript
    outcomes = [
        (r["user_id"], r["chat_type"], r["outcome"]) for r in journal(tmp_path, "remote_command")
    ]
    assert outcomes[2] == (STRANGER, "private", "refused")
    assert outcomes[3] == (OPERATOR, "group", "refused")
