"""Crash safety with real processes: kill -9 `cambio serve` at 20 chosen or random points
under concurrent order flow; after a restart every acknowledged command must be in the
journal with the events its client was told, and `cambio verify` must be ok.
(scripts/crash_soak.py runs the same rounds for as long as you like.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from crash_harness import crash_round


@pytest.mark.parametrize("seed", range(20))
def test_kill_9_loses_no_acknowledged_command(seed: int, tmp_path: Path) -> None:
    result = crash_round(seed, tmp_path)
    assert result["trades"] > 0, result  # real order flow, not a stream of rejections
