"""The remote channel in-process against the fake Bot API: what each command does, who may
send it, and what is journaled (the clock is injected: no real 60 s waits)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.remote.conftest import OPERATOR, STRANGER, Clock, Notified, loaded_config
from tests.remote.fake_telegram import FakeTelegram
from tradebot.remote.service import RemoteChannel

MakeChannel = Callable[..., RemoteChannel]


def events(tmp_path: Path, name: str | None = None) -> list[dict[str, Any]]:
    path = tmp_path / "logs" / "journal" / "events.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in lines if name is None or e["event"] == name]


def halt_file(tmp_path: Path) -> dict[str, Any] | None:
    path = tmp_path / "logs" / "state" / "halt.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_halt_from_an_allowed_private_chat_writes_the_halt_and_journals_the_user(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    notified = Notified()
    channel = make_channel(wall=clock, notify=notified)
    fake.message(OPERATOR, "/halt spread looks wrong", date=clock.epoch(2))
    assert channel.poll_once() == 1
    halt = halt_file(tmp_path)
    assert halt is not None and halt["halted"] is True and halt["flatten"] is False
    assert halt["operator"] == f"telegram:{OPERATOR}" and halt["reason"] == "spread looks wrong"
    command = events(tmp_path, "remote_command")[-1]
    assert command["user_id"] == OPERATOR and command["chat_type"] == "private"
    assert command["command"] == "/halt" and command["outcome"] == "accepted"
    journaled = events(tmp_path, "halt")[-1]  # the very line `tradebot halt` writes
    assert journaled["operator"] == f"telegram:{OPERATOR}" and journaled["flatten"] is False
    assert notified.calls == [("halt", f"HALT by telegram:{OPERATOR}: spread looks wrong")]
    reply = fake.wait_sent(lambda m: m["chat_id"] == OPERATOR)
    assert reply["text"].startswith("HALTED since ") and "No loop is running now" in reply["text"]


def _pending_code(text: str) -> str:
    return text.split("send /flatten ", 1)[1].split()[0]


def test_flatten_without_the_code_with_a_wrong_code_or_too_late_does_nothing(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    channel = make_channel(wall=clock)
    # Without the code: only a code comes back.
    fake.message(OPERATOR, "/flatten", date=clock.epoch())
    channel.poll_once()
    code = _pending_code(fake.texts(OPERATOR)[-1])
    assert halt_file(tmp_path) is None
    # A wrong code: nothing, and the code is used up (no second guess).
    fake.message(OPERATOR, "/flatten 000000", date=clock.epoch())
    channel.poll_once()
    assert fake.texts(OPERATOR)[-1].startswith("Wrong code. Nothing done.")
    fake.message(OPERATOR, f"/flatten {code}", date=clock.epoch())
    channel.poll_once()
    assert fake.texts(OPERATOR)[-1].startswith("No confirmation pending")
    assert halt_file(tmp_path) is None
    # The right code 61 s later: expired.
    fake.message(OPERATOR, "/flatten", date=clock.epoch())
    channel.poll_once()
    late = _pending_code(fake.texts(OPERATOR)[-1])
    clock.advance(61)
    fake.message(OPERATOR, f"/flatten {late}", date=clock.epoch())
    channel.poll_once()
    assert fake.texts(OPERATOR)[-1].startswith("Code expired. Nothing done.")
    assert halt_file(tmp_path) is None
    outcomes = [
        (e["command"], e["outcome"], e["detail"]) for e in events(tmp_path, "remote_command")
    ]
    assert outcomes == [
        ("/flatten", "accepted", "confirmation code sent (valid 60 s)"),
        ("/flatten", "refused", "wrong code"),
        ("/flatten", "refused", "no confirmation pending"),
        ("/flatten", "accepted", "confirmation code sent (valid 60 s)"),
        ("/flatten", "refused", "code expired"),
    ]
    assert not any(c in json.dumps(e) for e in events(tmp_path) for c in (code, late))


@pytest.mark.parametrize("tap", [False, True])
def test_flatten_with_the_code_in_time_requests_the_same_flatten_as_the_cli(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel, tap: bool
) -> None:
    clock = Clock()
    channel = make_channel(wall=clock)
    fake.message(OPERATOR, "/flatten", date=clock.epoch())
    channel.poll_once()
    code = _pending_code(fake.texts(OPERATOR)[-1])
    clock.advance(59)
    fake.message(OPERATOR, f"/flatten_{code}" if tap else f"/flatten {code}", date=clock.epoch())
    channel.poll_once()
    halt = halt_file(tmp_path)
    assert halt is not None and halt["halted"] and halt["flatten"] is True
    assert halt["operator"] == f"telegram:{OPERATOR}"
    assert events(tmp_path, "halt")[-1]["flatten"] is True
    assert "Flatten requested" in fake.texts(OPERATOR)[-1]


@pytest.mark.parametrize(
    ("send", "detail", "replied"),
    [
        (lambda f: f.message(STRANGER, "/halt"), "user not in the allow-list", True),
        (lambda f: f.message(STRANGER, "/flatten"), "user not in the allow-list", True),
        (lambda f: f.message(OPERATOR, "/halt", chat_type="group"), "not a private chat (group)",
         False),
        (lambda f: f.message(OPERATOR, "/halt", chat_type="supergroup"),
         "not a private chat (supergroup)", False),
        (lambda f: f.message(STRANGER, "/halt", chat_type="group"), "user not in the allow-list",
         False),
        (lambda f: f.channel_post("/halt"), "channel post", False),
    ],
    ids=["unknown-user", "unknown-flatten", "allowed-in-group", "allowed-in-supergroup",
         "unknown-in-group", "channel-post"],
)  # fmt: skip
def test_unknown_users_groups_and_channel_posts_are_refused_and_journaled(
    tmp_path: Path,
    fake: FakeTelegram,
    make_channel: MakeChannel,
    send: Callable[[FakeTelegram], int],
    detail: str,
    replied: bool,
) -> None:
    channel = make_channel()
    update_id = send(fake)
    channel.poll_once()
    assert halt_file(tmp_path) is None  # no state change
    assert not (tmp_path / "logs" / "state" / "halt.json").exists()
    record = events(tmp_path, "remote_command")[-1]
    assert record["update_id"] == update_id and record["outcome"] == "refused"
    assert record["detail"] == detail and record["command"] in ("/halt", "/flatten")
    assert [e for e in events(tmp_path) if e["event"] == "halt"] == []
    # Refusals get no detail back: a bare "Refused." to an unknown user's private chat, and
    # nothing at all in a group or a channel.
    assert fake.texts() == (["Refused."] if replied else [])


def test_unknown_users_are_rate_limited_and_a_burst_raises_one_alert(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    notified = Notified()
    channel = make_channel(wall=clock, notify=notified)
    for _ in range(3):
        fake.message(STRANGER, "/halt", date=clock.epoch())
    channel.poll_once()
    assert fake.texts(STRANGER) == ["Refused."]  # once per user per 10 minutes
    for n in range(6):
        fake.message(STRANGER + n, "/resume", date=clock.epoch())
    channel.poll_once()
    alerts = [m for e, m in notified.calls if e == "remote"]
    assert len(alerts) == 1 and "refused messages to the bot within 60 s" in alerts[0]
    assert any("refused messages" in t for t in fake.texts(OPERATOR))  # the phone hears it
    assert len(events(tmp_path, "remote_command")) == 9  # every one journaled
    assert halt_file(tmp_path) is None


def test_a_message_dated_two_minutes_ago_is_ignored_with_a_journaled_note(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    channel = make_channel(wall=clock)
    fake.message(OPERATOR, "/halt", date=clock.epoch(ago=120))
    fake.message(OPERATOR, "/flatten", date=clock.epoch(ago=120))
    channel.poll_once()
    assert halt_file(tmp_path) is None
    records = events(tmp_path, "remote_command")
    assert [r["outcome"] for r in records] == ["ignored", "ignored"]
    assert records[0]["detail"] == "sent 120 s ago (more than 60 s)"
    assert all(t.startswith("Ignored /") and "never run" in t for t in fake.texts(OPERATOR))


def test_a_restart_mid_stream_handles_no_command_twice(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    first = make_channel(wall=clock)
    ids = [
        fake.message(OPERATOR, "/halt first", date=clock.epoch()),
        fake.message(OPERATOR, "/status", date=clock.epoch()),
        fake.message(OPERATOR, "/halt second", date=clock.epoch()),
    ]
    # The first process fetches the batch and dies after handling its first update (before
    # its next getUpdates would have confirmed anything to Telegram).
    batch = first.api.get_updates(None, timeout_s=0)
    assert [u["update_id"] for u in batch] == ids
    first.handle(batch[0])
    assert fake.pending() == ids  # Telegram still holds all three
    second = make_channel(wall=clock)  # a new process: offset from state/remote-offset.json
    assert second.offset == ids[0] + 1
    second.poll_once()
    handled = [e["update_id"] for e in events(tmp_path, "remote_command")]
    assert handled == ids  # each exactly once
    assert [e["reason"] for e in events(tmp_path, "halt")] == ["first", "second"]
    second.poll_once()  # the next poll confirms them to Telegram
    assert fake.pending() == []
    third = make_channel(wall=clock)
    third.poll_once()
    assert [e["update_id"] for e in events(tmp_path, "remote_command")] == ids


@pytest.mark.parametrize(
    "text",
    ["/resume", "/resume now", "/buy SPY", "/forceentry SPY", "/phase advance", "/phase",
     "/config", "/set risk.max_risk_pct 5", "/unlock", "/stopentry", "/start_trading",
     "resume please", "/HALT2"],
)  # fmt: skip
def test_resume_entries_and_config_changes_are_not_available_remotely(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel, text: str
) -> None:
    clock = Clock()
    channel = make_channel(wall=clock)
    fake.message(OPERATOR, "/halt", date=clock.epoch())
    channel.poll_once()
    before = (tmp_path / "logs" / "state" / "halt.json").read_bytes()
    config_before = (tmp_path / "config.toml").read_bytes()
    fake.message(OPERATOR, text, date=clock.epoch())
    channel.poll_once()
    assert (tmp_path / "logs" / "state" / "halt.json").read_bytes() == before
    assert (tmp_path / "config.toml").read_bytes() == config_before
    reply = fake.texts(OPERATOR)[-1]
    assert "not available remotely" in reply or reply.startswith("Not a command.")
    record = events(tmp_path, "remote_command")[-1]
    assert record["outcome"] == "not_available"
    assert [e["event"] for e in events(tmp_path) if e["event"] in ("resume", "halt")] == ["halt"]


def test_status_and_positions_answer_in_one_message_in_new_york_time(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    channel = make_channel(wall=clock)
    fake.message(OPERATOR, "/status", date=clock.epoch())
    fake.message(OPERATOR, "/positions", date=clock.epoch())
    fake.message(OPERATOR, "/help", date=clock.epoch())
    channel.poll_once()
    status, positions, help_text = fake.texts(OPERATOR)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T", status)  # market time, its zone
    assert "Loop: not running" in status and "Halt: not halted" in status
    assert "Phase: experience" in status and "Today's realized P&L: $0.00" in status
    assert positions.startswith("Positions · ") and "No open positions." in positions
    assert "/flatten" in help_text and "Resume, entries, phase" in help_text


def test_an_edited_message_and_other_update_types_are_not_commands(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    channel = make_channel(wall=clock)
    fake.message(OPERATOR, "/halt", date=clock.epoch(), kind="edited_message")
    fake.raw_update({"callback_query": {"id": "1", "from": {"id": OPERATOR}, "data": "/halt"}})
    fake.raw_update({"message": {"date": int(clock.epoch()), "text": "/halt"}})  # no sender
    channel.poll_once()
    assert halt_file(tmp_path) is None
    assert [(r["outcome"], r["detail"]) for r in events(tmp_path, "remote_command")] == [
        ("ignored", "edited message"),
        ("ignored", "not a message (callback_query)"),
        ("refused", "user not in the allow-list"),
    ]


def test_a_command_addressed_to_another_bot_is_ignored(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    channel = make_channel(wall=clock)
    fake.message(OPERATOR, "/halt@some_other_bot", date=clock.epoch())
    fake.message(OPERATOR, "/halt@tradebot_test_bot why", date=clock.epoch())
    channel.poll_once()
    records = events(tmp_path, "remote_command")
    assert records[0]["detail"] == "addressed to another bot (@some_other_bot)"
    assert records[1]["outcome"] == "accepted"
    assert events(tmp_path, "halt")[-1]["reason"] == "why"


def test_a_journal_that_cannot_be_written_never_stops_a_halt_and_the_phone_is_told(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    channel = make_channel(wall=clock)
    journal = tmp_path / "logs" / "journal" / "events.jsonl"
    journal.unlink()
    journal.mkdir()  # a directory where the journal must be
    fake.message(OPERATOR, "/halt", date=clock.epoch())
    channel.poll_once()
    reply = fake.texts(OPERATOR)[-1]
    assert reply.startswith("FAILED: ") and "events.jsonl" in reply
    assert "The halt itself is in place" in reply
    halt = halt_file(tmp_path)
    assert halt is not None and halt["halted"]
    fake.message(OPERATOR, "/status", date=clock.epoch())
    channel.poll_once()  # the channel goes on
    assert "Halt: HALTED since" in fake.texts(OPERATOR)[-1]


def test_an_empty_allow_list_in_the_channel_accepts_nobody(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    channel = make_channel(loaded_config(tmp_path, fake.url, ids=()), wall=clock)
    fake.message(OPERATOR, "/halt", date=clock.epoch())
    channel.poll_once()
    assert halt_file(tmp_path) is None
    assert events(tmp_path, "remote_command")[-1]["outcome"] == "refused"


def test_after_a_week_without_updates_the_old_offset_is_not_sent(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    """Bot API, getUpdates: "If there are no new updates for at least a week, then identifier
    of the next update will be chosen randomly instead of sequentially": a running remote must
    not hide a new, lower-numbered update behind its old offset."""
    clock = Clock()
    channel = make_channel(wall=clock)
    fake.message(OPERATOR, "/help", date=clock.epoch())
    channel.poll_once()
    channel.poll_once()
    assert fake.calls[-1].params["offset"] == channel.offset
    clock.advance(7 * 86400)
    fake.next_update_id = 1234  # far below the old offset
    fake.message(OPERATOR, "/halt after a week", date=clock.epoch())
    channel.poll_once()
    assert "offset" not in fake.calls[-1].params
    assert events(tmp_path, "halt")[-1]["reason"] == "after a week"
    channel.poll_once()  # and from then on the new numbering
    assert fake.calls[-1].params["offset"] == 1235 == channel.offset
