"""Projection throughput: `python bench/projection.py [N] [URL]`.

Builds the read-model test stream with N commands (default 100,000; see
_projection_stream), then projects it from scratch into a fresh database (default a SQLite
file in /tmp) at several batch sizes, printing commands/s, events/s and rows/s for each.
The stream generator is the read-model tests' own (tests/store/_projection_stream.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "store"))

from _projection_stream import CONFIG, build
from _store_helpers import chunks, dump

from cambio.store import ReadModels

BATCHES = (2000, 200, 20)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    url = sys.argv[2] if len(sys.argv) > 2 else ""
    t = time.perf_counter()
    stream = build(n, seed=11, days=60)
    items = stream.items
    n_events = sum(len(ev) for _, _, ev in items)
    print(
        f"stream: {len(items):,} commands, {n_events:,} events "
        f"(built in {time.perf_counter() - t:.1f} s)"
    )
    for size in BATCHES:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            db_url = url or f"sqlite:///{os.path.join(tmp, 'readmodels.db')}"
            rm = ReadModels(db_url, CONFIG)
            rm.reset()
            t = time.perf_counter()
            for batch in chunks(items, (size,)):
                rm.apply(batch)
            dt = time.perf_counter() - t
            n_rows = sum(len(r) for r in dump(rm).values())
            rm.close()
            print(
                f"batches of {size:>5}: {dt:6.2f} s  {len(items) / dt:>9,.0f} commands/s  "
                f"{n_events / dt:>9,.0f} events/s  {n_rows / dt:>9,.0f} rows/s ({n_rows:,} rows)"
            )


if __name__ == "__main__":
    main()
