"""Run as a separate process by the crash tests: writes records until it is killed.

Usage: writer_process.py jsonl PATH TAG [START]  (append numbered records, acknowledge each)
       writer_process.py state PATH               (rewrite one state file again and again)
       writer_process.py hold-temp PATH           (start an atomic write of PATH, stop before
                                                   the rename and wait to be killed)
Every third record is large, so a SIGKILL can land in the middle of a write() and tear it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from tradebot.storage import JsonlFile, write_json_state

BIG = 400_000


def payload(i: int) -> str:
    return ("x" * BIG) if i % 3 == 2 else ("y" * (i % 50))


def run_jsonl(path: Path, tag: str, start: int) -> None:
    journal = JsonlFile(path)
    i = start
    while True:
        journal.append({"v": 1, "tag": tag, "seq": i, "pad": payload(i)})
        sys.stdout.write(f"{i}\n")
        sys.stdout.flush()
        i += 1


def run_state(path: Path) -> None:
    i = 0
    while True:
        body = ("ab"[i % 2]) * (BIG if i % 2 else 10)
        digest = hashlib.sha256(body.encode()).hexdigest()
        write_json_state(path, {"v": 1, "i": i, "body": body, "sha256": digest})
        i += 1


def hold_temp(path: Path) -> None:
    """The first half of `write_atomic`: a locked temp file with data, then wait forever."""
    from tradebot.storage.atomic import _create_temp, make_private_dirs

    make_private_dirs(path.parent)
    fd, tmp = _create_temp(path)
    os.write(fd, b'{"v": 1, "half": ')
    sys.stdout.write(f"{tmp}\n")
    sys.stdout.flush()
    sys.stdin.read()  # until killed (or stdin closes)


if __name__ == "__main__":
    kind, target = sys.argv[1], Path(sys.argv[2])
    if kind == "jsonl":
        run_jsonl(target, sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    elif kind == "hold-temp":
        hold_temp(target)
    else:
        run_state(target)
