"""End-to-end process timings: `tradebot --help` ≤ 0.3 s (spec §8, issue 2)."""

from __future__ import annotations

import subprocess

from benchmarks.conftest import TRADEBOT, median_s

HELP_TARGET_S = 0.3


def test_help_end_to_end(benchmark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def run() -> None:
        subprocess.run([str(TRADEBOT), "--help"], cwd=tmp_path, check=True, capture_output=True)

    benchmark.pedantic(run, rounds=15, warmup_rounds=2)
    assert median_s(benchmark) <= HELP_TARGET_S
