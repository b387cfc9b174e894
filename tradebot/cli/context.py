"""What the root callback records for the commands: the config path and --debug.

Settings are loaded lazily by the command that needs them, so a broken config never breaks
`--help`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tradebot.config import LoadedConfig


@dataclass
class CliState:
    config_path: Path
    config_explicit: bool
    debug: bool = False
    logs: Path | None = None  # --logs DIR: paths.logs_dir (and its state/) for this command
    _loaded: LoadedConfig | None = field(default=None, repr=False)

    def config(self, *, log_to_file: bool = True) -> LoadedConfig:
        """Load (once) and return the configuration; configures logging on first load."""
        if self._loaded is None:
            from tradebot.config import load_config
            from tradebot.logging_setup import configure_logging

            loaded = load_config(self.config_path)
            if self.logs is not None:
                from tradebot.config import with_logs_dir
                from tradebot.errors import ConfigError, UsageError

                try:
                    loaded = with_logs_dir(loaded, self.logs)
                except ConfigError as exc:
                    raise UsageError(exc.message) from None
            # Logging first, so that the warning below reaches the operator's stderr.
            configure_logging(loaded.logs_dir if log_to_file else None, debug=self.debug)
            if not loaded.file_found:
                message = (
                    f"config file {self.config_path} not found; using built-in defaults "
                    "(simulated broker, dry-run)"
                )
                logging.getLogger("tradebot").log(
                    logging.WARNING if self.config_explicit else logging.DEBUG, message
                )
            self._loaded = loaded
        return self._loaded


def state_of(ctx: typer.Context) -> CliState:
    """The CliState stored by the root callback."""
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, CliState):  # a sub-app invoked on its own (tests)
        from tradebot.config import resolve_config_path

        obj = CliState(config_path=resolve_config_path(None), config_explicit=False)
        root.obj = obj
    return obj
