"""`commands.decide` as a pure function: the rules one by one, and hypothesis invariants over
any sequence of updates (deny by default holds whatever arrives)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.market_time_text import utc_shown
from tradebot.remote.commands import (
    CODE_TTL,
    MAX_REASON,
    ChannelState,
    Incoming,
    Outcome,
    RaiseAlert,
    Reply,
    RequestHalt,
    ShowPositions,
    ShowStatus,
    decide,
    parse_update,
)

OP = 42
ALLOWED = frozenset({OP})
T0 = datetime(2025, 7, 1, 14, 0, tzinfo=UTC)


def msg(text: str | None, *, user: int | None = OP, chat_type: str = "private",
        chat: int | None = None, at: datetime = T0, kind: str = "message",
        update_id: int = 1) -> Incoming:  # fmt: skip
    chat_id = chat if chat is not None else (user if chat_type == "private" else -5)
    return Incoming(update_id, kind, user, chat_id, chat_type, at, text)


def run(update: Incoming, state: ChannelState | None = None, now: datetime = T0,
        code: str = "123456") -> Outcome:  # fmt: skip
    return decide(update, allowed=ALLOWED, now=now, state=state or ChannelState(),
                  fresh_code=code, bot_username="tb_bot")  # fmt: skip


def test_the_five_commands_of_an_allowed_private_chat() -> None:
    assert run(msg("/status")).actions == (ShowStatus(OP),)
    assert run(msg("/positions")).actions == (ShowPositions(OP),)
    assert run(msg("/halt  going\nout ")).actions == (RequestHalt(OP, OP, "going out", False),)
    assert run(msg("/halt")).actions == (RequestHalt(OP, OP, None, False),)
    assert "/flatten" in run(msg("/help")).actions[0].text  # type: ignore[union-attr]
    assert run(msg("/STATUS@tb_bot")).actions == (ShowStatus(OP),)


def test_a_stale_command_is_answered_in_new_york_time_with_its_zone() -> None:
    sent = T0 - timedelta(minutes=5)  # 13:55Z
    (reply,) = run(msg("/status", at=sent)).actions
    assert isinstance(reply, Reply)
    assert "sent at 09:55:00 EDT (300 s ago;" in reply.text
    assert not utc_shown([reply.text])


def test_a_long_reason_is_cut_never_refused() -> None:
    (halt,) = run(msg("/halt " + "x" * 2000)).actions
    assert isinstance(halt, RequestHalt) and halt.reason is not None
    assert len(halt.reason) == MAX_REASON and halt.reason.endswith("…")


def test_the_flatten_code_is_single_use_per_user_and_expires() -> None:
    asked = run(msg("/flatten"), code="654321")
    assert asked.state.pending[OP].code == "654321"
    assert "send /flatten 654321 within 60 s" in asked.actions[0].text  # type: ignore[union-attr]
    ok = run(msg("/flatten 654321 closing time"), asked.state, now=T0 + CODE_TTL)
    assert ok.actions == (RequestHalt(OP, OP, "closing time", True),)
    again = run(msg("/flatten 654321"), ok.state, now=T0 + CODE_TTL)
    assert again.record["detail"] == "no confirmation pending"
    late = run(msg("/flatten 654321", at=T0 + CODE_TTL), asked.state,
               now=T0 + CODE_TTL + timedelta(seconds=1))  # fmt: skip
    assert late.record["detail"] == "code expired" and not late.state.pending


def test_every_record_names_user_chat_type_command_and_outcome() -> None:
    record = run(msg("/halt now", chat_type="group", chat=-7)).record
    assert {k: record[k] for k in ("event", "user_id", "chat_type", "command", "outcome")} == {
        "event": "remote_command", "user_id": OP, "chat_type": "group", "command": "/halt",
        "outcome": "refused",
    }  # fmt: skip


def test_a_private_chat_that_is_not_the_users_own_is_refused() -> None:
    assert run(msg("/halt", chat=OP + 1)).record["outcome"] == "refused"


def test_parse_update_takes_what_telegram_sends_and_survives_junk() -> None:
    chat = {"id": OP, "type": "private"}
    message = {"date": 1751378400, "text": "/halt", "from": {"id": OP}, "chat": chat}
    update = parse_update({"update_id": 7, "message": message})
    assert update == Incoming(7, "message", OP, OP, "private", T0, "/halt")
    assert parse_update({"message": {}}) is None
    assert parse_update({"update_id": True}) is None
    assert parse_update({"update_id": 3, "poll": {}}) == Incoming(
        3, "poll", None, None, None, None, None
    )
    junk = parse_update({"update_id": 4, "message": {"from": "x", "chat": 5, "date": 10**20}})
    assert junk is not None and junk.user_id is None and junk.date is None


texts = st.one_of(
    st.sampled_from(["/halt", "/flatten", "/flatten 123456", "/flatten_123456", "/status",
                     "/positions", "/help", "/resume", "/buy SPY", "/phase advance", "hello",
                     "/halt@other_bot", "/flatten 000000"]),
    st.text(max_size=30),
    st.none(),
)  # fmt: skip
updates = st.builds(
    msg,
    texts,
    user=st.sampled_from([OP, 7, None]),
    chat_type=st.sampled_from(["private", "group", "supergroup", "channel"]),
    chat=st.sampled_from([None, OP, -100]),
    at=st.integers(-200, 200).map(lambda s: T0 + timedelta(seconds=s)),
    kind=st.sampled_from(["message", "edited_message", "channel_post", "callback_query"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(updates, st.integers(0, 90)), max_size=25))
def test_deny_by_default_holds_for_any_sequence_of_updates(
    sequence: list[tuple[Incoming, int]],
) -> None:
    """Whatever arrives: one journal record per update; a halt only from the allowed user in
    their own private chat with a message at most 60 s old; a flatten only with the code issued
    to that user within 60 s and not used before; no reply into a group or a channel."""
    state = ChannelState()
    now = T0
    issued: dict[int, tuple[str, datetime]] = {}
    for n, (update, step) in enumerate(sequence):
        now += timedelta(seconds=step)
        code = f"{n:06d}"
        outcome = run(update, state, now=now, code=code)
        assert outcome.record["event"] == "remote_command"
        assert outcome.record["outcome"] in ("accepted", "refused", "ignored", "not_available")
        trusted = (
            update.kind == "message" and update.user_id == OP and update.chat_type == "private"
            and update.chat_id == OP and update.date is not None
            and abs((now - update.date).total_seconds()) <= 60
        )  # fmt: skip
        for action in outcome.actions:
            if isinstance(action, (RequestHalt, ShowStatus, ShowPositions)):
                assert trusted
            if isinstance(action, Reply):
                assert action.chat_id > 0  # a private chat, never a group or a channel
                if action.chat_id != OP:
                    assert action.text == "Refused."
            if isinstance(action, RequestHalt) and action.flatten:
                given_code = update.text.replace("_", " ").split()[1]  # type: ignore[union-attr]
                assert OP in issued and issued[OP][0] == given_code
                assert now - issued[OP][1] <= CODE_TTL
            if isinstance(action, RaiseAlert):
                assert outcome.record["outcome"] == "refused"
        if outcome.state.pending.get(OP) is not None and outcome.state.pending[
            OP
        ] != state.pending.get(OP):
            issued[OP] = (outcome.state.pending[OP].code, now)
        if OP not in outcome.state.pending:
            issued.pop(OP, None)
        state = outcome.state
        assert len(state.refusals) <= 20 and len(state.replied) <= 1000


def test_any_other_command_cancels_a_pending_flatten() -> None:
    asked = run(msg("/flatten"), code="111111")
    between = run(msg("/status"), asked.state)
    assert not between.state.pending
    assert run(msg("/flatten 111111"), between.state).record["detail"] == "no confirmation pending"
    other = run(msg("/halt"), run(msg("/flatten"), code="2").state)
    assert not other.state.pending
    for text in ("hello", None):
        cancelled = run(msg(text), run(msg("/flatten"), code="3").state)
        assert not cancelled.state.pending
