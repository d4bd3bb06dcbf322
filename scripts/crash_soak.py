"""Crash soak: as many kill -9 / recover rounds of tests/runtime/crash_harness.py as asked.

    .venv/bin/python scripts/crash_soak.py --rounds 200 [--first-seed 1000]

Each round starts `cambio serve` on a fresh data directory, drives concurrent order flow,
kills it (at a crash point or at a random moment), restarts it and audits the journal.
Stops at the first failure and leaves that round's data directory for inspection.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "runtime"))

from crash_harness import crash_round
from rich.progress import Progress


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="rounds to run (default 100)")
    parser.add_argument("--first-seed", type=int, default=1000, help="seed of the first round")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cambio-soak-"))
    counts: dict[str, int] = {}
    started = time.monotonic()
    with Progress() as bar:
        task = bar.add_task("kill -9 rounds", total=args.rounds)
        for seed in range(args.first_seed, args.first_seed + args.rounds):
            try:
                result = crash_round(seed, workdir)
            except Exception as exc:
                bar.stop()
                print(f"round {seed} FAILED: {exc}\ndata: {workdir / f'data-{seed}'}")
                return 1
            point = result["point"] or "random SIGKILL"
            counts[point] = counts.get(point, 0) + 1
            bar.advance(task)
    print(f"{args.rounds} rounds ok in {time.monotonic() - started:.0f} s: {counts}")
    print(f"data directories in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
