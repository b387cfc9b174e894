"""The phase ladder as the loop and the commands use it (spec §3).

Reads the journal (trades and order events), the phase history and the state, evaluates the pure
rules in `tradebot.core.phase_rules`, and makes every transition one durable append under the
history file's exclusive lock, so `tradebot run` and `tradebot phase advance` in another terminal
can never interleave. Nothing is kept in memory between calls: a restart loses nothing.

Loop-facing calls:

* `check_entry(now, mode)` before each entry: allowed, or refused with each rule and its numbers,
  plus the position cap. A history file that cannot be read refuses every entry (fail safe).
* `check_exit()` always allows: exits, stops, flattening and `halt --flatten` are never blocked.
* `on_tick(now, equity=..., session_closed=...)` after each closed trade and at every tick:
  downgrades one step when a trigger holds (at most once per session; the daily loss only on the
  broker's marked equity), recording what it decided on; writes closed sessions to
  `session-metrics.jsonl` (at the close the loop reports); sends the "next phase eligible"
  notice once per phase.

One class, `PhaseLadder`, split by duty: `evaluation` (reading: the snapshot and its window),
`limits` (entries and their reservation), `transitions` (downgrade, notice, earned advance),
`session_records` (`session-metrics.jsonl`) and `overrides` (forced moves and the password).
"""

from __future__ import annotations

from tradebot.books.ladder.evaluation import LadderSnapshot, Notify
from tradebot.books.ladder.limits import EntryLimits
from tradebot.books.ladder.overrides import Overrides, default_operator
from tradebot.books.ladder.transitions import TickResult, Transitions


class PhaseLadder(EntryLimits, Transitions, Overrides):
    """The ladder over one configuration's files (its duties: see the module docstring)."""


__all__ = ["LadderSnapshot", "Notify", "PhaseLadder", "TickResult", "default_operator"]
