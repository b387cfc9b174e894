"""Logging: plain lines when not on a terminal, a rotating file created only when used."""

from __future__ import annotations

import logging
from pathlib import Path

from tradebot.logging_setup import LOG_FILE_NAME, configure_logging


def test_file_is_created_lazily_and_rotates(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    configure_logging(logs, max_bytes=400, backups=2)
    log = logging.getLogger("tradebot.test")
    assert not logs.exists()  # nothing logged yet, nothing created
    for i in range(30):
        log.info("line %d with some padding to fill the file quickly", i)
    assert (logs / LOG_FILE_NAME).exists()
    assert (logs / f"{LOG_FILE_NAME}.1").exists()
    assert not (logs / f"{LOG_FILE_NAME}.3").exists()  # only `backups` old files are kept
    text = (logs / LOG_FILE_NAME).read_text()
    assert "INFO tradebot.test" in text and "line 29" in text
    configure_logging(None)  # detach the file handler again


def test_console_is_plain_when_not_a_terminal(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging(None)
    logging.getLogger("tradebot.x").warning("careful: %s", "numbers")
    err = capsys.readouterr().err
    assert "WARNING careful: numbers" in err
    logging.getLogger("tradebot.x").info("not shown on the console by default")
    assert "not shown" not in capsys.readouterr().err
