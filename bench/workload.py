"""Seeded, deterministic order-flow streams for one market, with their expected fills.

A stream is a ``prefill`` (resting GTC orders that build the starting book, never crossing)
followed by ``ops``: about 55% GTC limits (a few of them crossing the spread), 30% cancels
of random live orders, 10% takers (70% IOC limits, 30% market orders) and 5% amends (half
reduce the size in place, half move the price and lose priority).  Every row is 5 ints
``(op, oid, side, price, qty)`` in price units and lots (see ``refbook.py`` for what each
``op`` means); order ids are sequential from 1 for every order placed.

While generating, every command is applied to the bench's own bare reference book
(``refbook.RefBook``), so cancels and amends always target an order that is live at that
point and passive prices follow the *current* mid; a feedback term on the share of crossing
GTC orders keeps the book near its target size.  The expected results (fill count, traded
volume, fill digest, final book figures, op counts) come from the same replay.

The fill digest is SHA-1 over the fills as native int64 rows ``(maker_oid, taker_oid, price,
qty)`` in fill order -- byte for byte ``numpy.array(fills, dtype=numpy.int64).tobytes()``.
SHA-1 is a stream, so how the fills are chunked into ``update`` calls does not matter.

Profiles (same names, sizes and random-draw sequence as the peer yardstick's generator, so
a seed gives the same stream there and here):

    standard  10,000 resting orders on ~1,000 levels, 1,000,000 ops
    large     1,000,000 resting orders on ~10,000 levels, 1,000,000 ops
    tiny      300 resting orders, 20,000 ops (a quick correctness run)
    deep      2,000 resting orders on ~16 levels, 20,000 ops (deep FIFO queues)

Files are ``.npz`` archives: int64 arrays ``prefill`` and ``ops`` of shape (n, 5) and one
``e_<key>`` scalar per expected result (numpy is needed to read or write them).

Usage::

    python bench/workload.py standard OUT.npz [--seed S] [--ops M]   # write a stream
    python bench/workload.py --verify FILE.npz                       # re-check a stream
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from refbook import Fill, RefBook, Row

PROFILES: dict[str, dict[str, int]] = {
    # n: resting orders at start; half_levels: price levels per side; m: operations
    "standard": {"n": 10_000, "half_levels": 500, "m": 1_000_000},
    "large": {"n": 1_000_000, "half_levels": 5_000, "m": 1_000_000},
    "tiny": {"n": 300, "half_levels": 20, "m": 20_000},
    "deep": {"n": 2_000, "half_levels": 8, "m": 20_000},
}

P0 = 1_000_000  # starting mid, price units
MAX_Q = 100  # maker size: 1..MAX_Q lots
MAX_TAKE = 200  # taker size: 1..MAX_TAKE lots

# the expected-result keys, in the order the .npz files carry them
BOOK_KEYS = (
    "resting_orders",
    "bid_levels",
    "ask_levels",
    "bid_qty",
    "ask_qty",
    "best_bid",
    "best_ask",
)
COUNT_KEYS = ("gtc", "gtc_cross", "cancel", "ioc", "market", "amend_reduce", "amend_move")

Expect = dict[str, Any]  # ints, and the digest as a hex string


@dataclass
class Workload:
    """A stream: its name, the prefill and op rows, and the expected results.

    The rows are a list of 5-int tuples when generated, and an int64 numpy array of shape
    (n, 5) when loaded from a file (40 bytes a row instead of ~200); ``iter_rows`` and
    ``rows_between`` read either as plain Python ints.
    """

    name: str
    prefill: Any
    ops: Any
    expect: Expect = field(default_factory=dict)


def rows_between(rows: Any, lo: int, hi: int) -> list[Row]:
    """rows[lo:hi] as a list of rows of Python ints."""
    part = rows[lo:hi]
    return part.tolist() if hasattr(part, "tolist") else list(part)


def iter_rows(rows: Any, chunk: int = 65_536) -> Iterator[Row]:
    """Every row, as Python ints (converted a chunk at a time)."""
    if not hasattr(rows, "tolist"):
        yield from rows
        return
    for lo in range(0, len(rows), chunk):
        yield from rows[lo : lo + chunk].tolist()


def max_oid(wl: Workload) -> int:
    """The largest order id the stream uses."""
    best = 0
    for rows in (wl.prefill, wl.ops):
        if len(rows):
            best = max(
                best, int(rows[:, 1].max()) if hasattr(rows, "tolist") else max(r[1] for r in rows)
            )
    return best


class FillDigest:
    """Running count, volume and SHA-1 of fills (see the module docstring)."""

    def __init__(self) -> None:
        self.n = 0
        self.volume = 0
        self._sha = hashlib.sha1()

    def update(self, fills: Sequence[Fill]) -> None:
        self.n += len(fills)
        self.volume += sum(f[3] for f in fills)
        self._sha.update(array("q", chain.from_iterable(fills)).tobytes())

    def update_flat(self, flat: array[int]) -> None:
        """Fills given as a flat int64 array of 4-int rows."""
        self.n += len(flat) // 4
        self.volume += sum(flat[3::4])
        self._sha.update(flat.tobytes())

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def result(self) -> Expect:
        return {"n_fills": self.n, "volume": self.volume, "fill_digest": self.hexdigest()}


def generate(profile: str, seed: int = 1, m: int | None = None) -> Workload:
    """Generate the stream of `profile` (first `m` ops only when given)."""
    cfg = PROFILES[profile]
    n_target, half = cfg["n"], cfg["half_levels"]
    m = cfg["m"] if m is None else m
    rng = random.Random(seed)
    rand, randint, bit = rng.random, rng.randint, rng.getrandbits
    book = RefBook()
    orders = book.orders
    fills = book.fills

    # the live oids, for drawing cancel / amend targets: a list with swap-remove + its index
    live: list[int] = []
    where: dict[int, int] = {}

    def add_live(oid: int) -> None:
        if oid not in where:
            where[oid] = len(live)
            live.append(oid)

    def drop_live(oid: int) -> None:
        i = where.pop(oid, None)
        if i is not None:
            last = live.pop()
            if i < len(live):
                live[i] = last
                where[last] = i

    def offset() -> int:
        # distance from the mid in levels, density ~ 1/sqrt(x): thick at the touch
        return int(rand() ** 2 * half)

    prefill: list[Row] = []
    oid = 0
    for _ in range(n_target):
        oid += 1
        side = bit(1)
        price = P0 - offset() if side == 0 else P0 + 1 + offset()
        passive = (0, oid, side, price, randint(1, MAX_Q))
        prefill.append(passive)
        book.apply(passive)
        add_live(oid)
    if fills:
        raise AssertionError("the prefill crossed the book")

    ops: list[Row] = []
    counts = dict.fromkeys(COUNT_KEYS, 0)
    digest = FillDigest()
    for _ in range(m):
        r = rand()
        bb, ba = book.best_bid(), book.best_ask()
        mid = P0 if bb < 0 or ba < 0 else (bb + ba) // 2
        row: Row
        if r < 0.55 or not live:
            oid += 1
            side = bit(1)
            q = randint(1, MAX_Q)
            cross_share = 0.06 + 2.0 * (len(live) - n_target) / n_target
            if rand() < cross_share:
                counts["gtc_cross"] += 1
                q = randint(1, MAX_TAKE)
                if side == 0:
                    price = (ba if ba > 0 else mid) + randint(0, 5)
                else:
                    price = (bb if bb > 0 else mid) - randint(0, 5)
            else:
                price = mid - offset() if side == 0 else mid + 1 + offset()
            row = (0, oid, side, price, q)
            counts["gtc"] += 1
        elif r < 0.85:
            row = (1, live[randint(0, len(live) - 1)], 0, 0, 0)
            counts["cancel"] += 1
        elif r < 0.95:
            oid += 1
            side = bit(1)
            q = randint(1, MAX_TAKE)
            if rand() < 0.7:
                if side == 0:
                    price = (ba if ba > 0 else mid) + randint(0, 10)
                else:
                    price = (bb if bb > 0 else mid) - randint(0, 10)
                row = (2, oid, side, price, q)
                counts["ioc"] += 1
            else:
                row = (3, oid, side, 0, q)
                counts["market"] += 1
        else:
            target = live[randint(0, len(live) - 1)]
            o = orders[target]
            if rand() < 0.5 and o.qty > 1:
                row = (4, target, 0, o.price, randint(1, o.qty - 1))
                counts["amend_reduce"] += 1
            else:
                d = randint(1, 10)
                new_price = o.price + d if rand() < 0.5 else o.price - d
                row = (4, target, 0, max(1, new_price), o.qty)
                counts["amend_move"] += 1
        ops.append(row)

        f0 = len(fills)
        book.apply(row)
        for k in range(f0, len(fills)):
            maker = fills[k][0]
            if maker not in orders:
                drop_live(maker)
        if row[1] in orders:
            add_live(row[1])
        else:
            drop_live(row[1])
        if len(fills) > 100_000:  # bound memory; the digest is a stream
            digest.update(fills)
            fills.clear()
    digest.update(fills)
    fills.clear()
    expect: Expect = digest.result()
    expect.update(book.summary())
    expect.update(counts)
    return Workload(f"{profile}", prefill, ops, expect)


def replay(
    prefill: Any, ops: Any, want_fills: bool = False
) -> tuple[Expect, list[Fill], list[int]]:
    """Replay a stream through a fresh reference book.

    Returns (the fill and book figures, the fills, the index in `ops` of each fill's
    command); the last two are empty unless `want_fills`.
    """
    book = RefBook()
    for row in iter_rows(prefill):
        book.apply(row)
    if book.fills:
        raise ValueError("the prefill crosses the book")
    fills = book.fills
    digest = FillDigest()
    all_fills: list[Fill] = []
    fill_op: list[int] = []
    for i, row in enumerate(iter_rows(ops)):
        book.apply(row)
        if fills:
            digest.update(fills)
            if want_fills:
                all_fills.extend(fills)
                fill_op.extend([i] * len(fills))
            fills.clear()
    result = digest.result()
    result.update(book.summary())
    return result, all_fills, fill_op


def verify(wl: Workload) -> list[str]:
    """Re-derive a stream's expected fills and book from scratch; list the disagreements."""
    got, _, _ = replay(wl.prefill, wl.ops)
    return [
        f"{k}: stream says {wl.expect[k]!r}, reference book gives {v!r}"
        for k, v in got.items()
        if k in wl.expect and wl.expect[k] != v
    ]


# ---------------------------------------------------------------------- .npz files
def save(wl: Workload, path: str | Path) -> None:
    import numpy as np

    arrays: dict[str, Any] = {"e_" + k: np.array(v) for k, v in wl.expect.items()}
    arrays["prefill"] = np.array(wl.prefill, dtype=np.int64).reshape(-1, 5)
    arrays["ops"] = np.array(wl.ops, dtype=np.int64).reshape(-1, 5)
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(fh, **arrays)


def load(path: str | Path) -> Workload:
    """Read a stream written by this module or by the peer yardstick's generator."""
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        expect: Expect = {}
        for k in z.files:
            if k.startswith("e_"):
                v = z[k]
                expect[k[2:]] = v.item() if v.shape == () else str(v)
        prefill = np.ascontiguousarray(z["prefill"], dtype=np.int64).reshape(-1, 5)
        ops = np.ascontiguousarray(z["ops"], dtype=np.int64).reshape(-1, 5)
    return Workload(Path(path).stem, prefill, ops, expect)


def cached(
    profile: str, seed: int, m: int | None, cache_dir: Path, quiet: bool = False
) -> Workload:
    """The stream of (profile, seed, m), generated once and kept in `cache_dir`.

    A missing stream is generated by a child process (this module's command line), so the
    generator's memory never counts in the caller's peak RSS.
    """
    m = PROFILES[profile]["m"] if m is None else m
    path = cache_dir / f"{profile}-seed{seed}-ops{m}.npz"
    if not path.exists():
        if not quiet:
            print(
                f"generating the {profile} stream (seed {seed}, {m:,} ops) into {path}",
                file=sys.stderr,
                flush=True,
            )
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        cmd = [sys.executable, __file__, profile, str(tmp), "--seed", str(seed), "--ops", str(m)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        tmp.replace(path)
        if not quiet:
            print(f"generated in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    wl = load(path)
    wl.name = profile
    return wl


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Writes the same .npz format as the peer yardstick's workload.py; "
        "--verify replays a file through the bench's reference book and checks it.",
    )
    ap.add_argument("profile", nargs="?", choices=sorted(PROFILES))
    ap.add_argument("out", nargs="?", help="output .npz path")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--ops", type=int, default=None, help="number of ops (default: profile's)")
    ap.add_argument("--verify", metavar="FILE", help="check FILE's expected results instead")
    a = ap.parse_args(argv)
    if a.verify:
        wl = load(a.verify)
        bad = verify(wl)
        for line in bad:
            print(line)
        print(f"{a.verify}: {len(wl.ops):,} ops, " + ("MISMATCH" if bad else "ok"))
        return 1 if bad else 0
    if not a.profile or not a.out:
        ap.error("give PROFILE and OUT (or --verify FILE)")
    t = time.perf_counter()
    wl = generate(a.profile, a.seed, a.ops)
    save(wl, a.out)
    elapsed = time.perf_counter() - t
    print(f"{a.profile}: prefill={len(wl.prefill)} ops={len(wl.ops)} in {elapsed:.1f}s")
    for k, v in wl.expect.items():
        print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
