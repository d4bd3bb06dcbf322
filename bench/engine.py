"""Benchmark cambio's matching engine on a one-market order-flow stream.

The stream (see ``bench/workload.py``) is replayed through the FULL engine --
``cambio.engine.Exchange`` with accounts, balance holds, fees and events -- one command at a
time, as the sequencer would feed it:

* buys come from accounts 1-50 and sells from accounts 51-100 (chosen by order id), so
  self-trade prevention never fires; each account is funded with a huge deposit of both
  assets before the clock starts;
* the market is a synthetic pair BENCHUSD (XBENCH/ZUSD, 2 price decimals, 4 lot decimals,
  tick 0.01, ordermin one lot, no cost minimum) charged with the real fee tier schedule of
  ``cambio/model/markets.toml``, so the stream's integer prices and quantities are the
  engine's native price units and lots, and fees and tier changes happen for real;
* op rows become commands: 0 GTC limit -> AddOrder(tif=GTC), 1 cancel -> CancelOrder,
  2 IOC -> AddOrder(tif=IOC), 3 market -> AddOrder(ordertype=market), 4 amend (new price,
  new *remaining* qty) -> AmendOrder(order_qty = filled so far + qty, limit_price=price);
* the engine numbers orders 1, 2, 3... as the stream does, so its ``Trade`` events carry
  the stream's order ids; their (maker, taker, price, qty) rows are checked against the
  stream's expected fill count, volume and SHA-1 digest.  On a mismatch the first
  diverging fill is located with the bench's own reference book and the command that
  caused it is replayed and printed with the engine's events (a ready-made bug report).

Only the ops phase is timed.  Each ``apply`` is timed with ``time.perf_counter_ns`` into a
preallocated ``array('q')``:

* ``ops_per_s``       ops / the summed apply() time (the engine alone);
* ``wall_ops_per_s``  ops / the whole loop (also building commands, timing, reading events);
* ``p50_us`` ``p99_us`` ``p999_us``  per-apply latency percentiles, microseconds;
* ``max_stall_ms``    the slowest single apply (GC pauses show up here);
* ``peak_rss_mb``     the process's peak resident set (getrusage), taken after the run;
* ``fills_ok``        fills match the stream's count, volume and digest.

Garbage collection: after the prefill the bench runs ``gc.collect(); gc.freeze()`` (the
book and balances become permanent and are never traversed again) and raises the
collector's thresholds to (100_000, 50, 100): the engine's structs are mostly untracked
(``gc=False``) so there is little to collect, and a full collection over a million-order
book is a stall of hundreds of ms. ``--gc default`` measures with CPython's defaults,
``--gc off`` with the collector disabled.

``--yardstick`` also times the peer yardstick ``ref_engine.py`` (a bare book: no accounts,
no fees, no events) on the same stream in the same process, and adds ``ref_ops_per_s`` and
``ratio`` (= ops_per_s / ref_ops_per_s) to the JSON.  It is optional and never required.

Targets: standard >= 400k ops/s; large >= 200k ops/s under 1.5 GB peak RSS; p99 <= 10 us;
no stall > 20 ms.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import resource
import sys
import time
import tomllib
from array import array
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import workload as wlmod
from refbook import Row

from cambio.model.commands import (
    GTC,
    IOC,
    LIMIT,
    MARKET,
    AddOrder,
    AmendOrder,
    CancelOrder,
    Deposit,
)
from cambio.model.config import MarketConfig, build_config
from cambio.model.events import Deposited, OrderAccepted, OrderRejected, Trade

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE = BENCH_DIR / ".cache"
DEFAULT_REF = BENCH_DIR.parent.parent / "shared" / "bench" / "ref_engine.py"

PAIR = "BENCHUSD"
BASE = "XBENCH"
QUOTE = "ZUSD"
N_ACCOUNTS = 50  # per side: buyers 1..50, sellers 51..100
FUNDING = 10**16  # per account and asset: the engine caps an asset's supply at 2**63 - 1
T0 = 1_700_000_000 * 10**9  # sequenced time of the first command, ns
DT = 1_000  # ns between commands
CHUNK = 16_384  # ops between progress updates
GC_TUNED = (100_000, 50, 100)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- market
def bench_config() -> MarketConfig:
    """The one-pair MarketConfig, with the packaged fee schedule."""
    text = resources.files("cambio.model").joinpath("markets.toml").read_text("utf-8")
    fees = tomllib.loads(text)["fees"]
    return build_config(
        {
            "fees": fees,
            "asset": [
                {"id": BASE, "altname": "BENCH", "decimals": 8, "display_decimals": 5},
                {"id": QUOTE, "altname": "USD", "symbol": "USD", "decimals": 4},
            ],
            "pair": [
                {
                    "id": PAIR,
                    "altname": PAIR,
                    "wsname": "BENCH/USD",
                    "base": BASE,
                    "quote": QUOTE,
                    "pair_decimals": 2,
                    "lot_decimals": 4,
                    "ordermin": "0.0001",
                    "costmin": "0",
                    "tick_size": "0.01",
                }
            ],
        }
    )


def account_of(oid: int, side: int) -> int:
    return 1 + oid % N_ACCOUNTS + N_ACCOUNTS * side


class Replayer:
    """Feeds stream rows to an Exchange as commands, sequencing them and recording fills."""

    def __init__(self, n_orders: int) -> None:
        from cambio.engine import Exchange

        self.ex = Exchange(bench_config())
        self.seq = 0
        self.owner = array("q", [0]) * (n_orders + 1)  # account of each oid
        self.fills = array("q")  # flat (maker, taker, price, qty) rows
        self.fill_op = array("q")  # index in ops of each fill's command
        self.rejects = 0
        self.first_reject: tuple[int, Row, Any] | None = None

    def setup(self, prefill: Any) -> None:
        """Fund the accounts and load the resting book (untimed)."""
        apply = self.ex.apply
        for acct in range(1, 2 * N_ACCOUNTS + 1):
            for asset in (BASE, QUOTE):
                self.seq += 1
                evs = apply(
                    Deposit(
                        seq=self.seq,
                        ts=T0 + self.seq * DT,
                        account=acct,
                        asset=asset,
                        amount=FUNDING,
                    )
                )
                if [type(e) for e in evs] != [Deposited]:
                    raise SystemExit(f"funding account {acct} failed: {evs!r}")
        for row in wlmod.iter_rows(prefill):
            evs = self._apply(row, -1)
            accepted = [e.order_id for e in evs if type(e) is OrderAccepted]
            if accepted != [row[1]]:
                raise SystemExit(
                    f"prefill {row}: expected OrderAccepted(order_id={row[1]}), "
                    f"the engine said {evs!r}"
                )
        if self.fills:
            raise SystemExit("the prefill produced fills: not a passive book")

    def command(self, row: Row) -> Any:
        """The engine command for one stream row (numbered and stamped)."""
        op, oid, side, price, qty = row
        self.seq = seq = self.seq + 1
        ts = T0 + seq * DT
        if op == 0 or op == 2:
            self.owner[oid] = acct = account_of(oid, side)
            return AddOrder(
                seq=seq,
                ts=ts,
                account=acct,
                pair=PAIR,
                side=side,
                ordertype=LIMIT,
                qty=qty,
                price=price,
                tif=GTC if op == 0 else IOC,
            )
        if op == 1:
            return CancelOrder(seq=seq, ts=ts, account=self.owner[oid], order_id=oid)
        if op == 3:
            self.owner[oid] = acct = account_of(oid, side)
            return AddOrder(
                seq=seq, ts=ts, account=acct, pair=PAIR, side=side, ordertype=MARKET, qty=qty
            )
        o = self.ex.order(oid)
        filled = o.filled if o is not None else 0
        return AmendOrder(
            seq=seq,
            ts=ts,
            account=self.owner[oid],
            order_id=oid,
            order_qty=filled + qty,
            limit_price=price,
        )

    def _apply(self, row: Row, i: int) -> list[Any]:
        evs: list[Any] = self.ex.apply(self.command(row))
        for e in evs:
            t = type(e)
            if t is Trade:
                self.fills.extend((e.maker_order, e.taker_order, e.price, e.qty))
                self.fill_op.append(i)
            elif t is OrderRejected:
                self.rejects += 1
                if self.first_reject is None:
                    self.first_reject = (i, row, e)
        return evs

    def run(self, ops: Any, lat: array[int], tick: Callable[[int], None] | None = None) -> int:
        """The timed phase: apply every op, timing each apply; return the loop's wall ns."""
        apply = self.ex.apply
        command = self.command
        clock = time.perf_counter_ns
        fills_extend = self.fills.extend
        fill_op_append = self.fill_op.append
        n = len(ops)
        wall = 0
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            rows = wlmod.rows_between(ops, lo, hi)  # Python ints (untimed)
            w0 = clock()
            for i in range(lo, hi):
                row = rows[i - lo]
                cmd = command(row)
                t0 = clock()
                evs: list[Any] = apply(cmd)
                t1 = clock()
                lat[i] = t1 - t0
                for e in evs:
                    t = type(e)
                    if t is Trade:
                        fills_extend((e.maker_order, e.taker_order, e.price, e.qty))
                        fill_op_append(i)
                    elif t is OrderRejected:
                        self.rejects += 1
                        if self.first_reject is None:
                            self.first_reject = (i, row, e)
            wall += clock() - w0
            if tick is not None:
                tick(hi)
        return wall


# ---------------------------------------------------------------------- checks
def check_fills(fills: array[int], expect: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    d = wlmod.FillDigest()
    d.update_flat(fills)
    got = d.result()
    return all(got[k] == expect.get(k) for k in got), got


def diagnose(wl: wlmod.Workload, rp: Replayer, out: Callable[[str], None]) -> None:
    """Find the first fill where the engine and the reference book disagree; show its cause."""
    _, ref_fills, ref_op = wlmod.replay(wl.prefill, wl.ops, want_fills=True)
    got = rp.fills
    n_got = len(got) // 4
    k = 0
    while k < n_got and k < len(ref_fills) and tuple(got[4 * k : 4 * k + 4]) == ref_fills[k]:
        k += 1
    if k == n_got and k == len(ref_fills):
        out("diagnosis: the fills are identical to the reference book's (expectations stale?)")
        return
    e_fill = tuple(got[4 * k : 4 * k + 4]) if k < n_got else None
    e_op = rp.fill_op[k] if k < n_got else None
    r_fill = ref_fills[k] if k < len(ref_fills) else None
    r_op = ref_op[k] if k < len(ref_fills) else None
    out(f"first diverging fill: #{k} (of {n_got:,} engine / {len(ref_fills):,} reference)")
    out(f"  engine    {e_fill} (maker, taker, price, qty) from op #{e_op}")
    out(f"  reference {r_fill} from op #{r_op}")
    cands = [x for x in (e_op, r_op) if x is not None]
    if not cands:
        return
    at = min(cands)
    out(f"  op #{at}: row {wlmod.rows_between(wl.ops, at, at + 1)[0]} (op, oid, side, price, qty)")
    # replay a fresh engine up to that op, then show the command and what the engine said
    fresh = Replayer(wlmod.max_oid(wl))
    fresh.setup(wl.prefill)
    for i, r in enumerate(wlmod.iter_rows(wl.ops[:at])):
        fresh._apply(r, i)
    row = wlmod.rows_between(wl.ops, at, at + 1)[0]
    if row[0] in (1, 4):
        out(f"  engine's order {row[1]} before: {fresh.ex.order(row[1])!r}")
    cmd = fresh.command(row)
    fresh.seq -= 1  # command() numbered it; apply the very same command
    out(f"  command: {cmd!r}")
    for e in fresh.ex.apply(cmd):
        out(f"    -> {e!r}")


def percentile(sorted_ns: Sequence[int], q: float) -> float:
    """Nearest-rank percentile, in microseconds."""
    if not sorted_ns:
        return 0.0
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


def sort_latencies(lat: array[int]) -> Sequence[int]:
    try:
        import numpy as np

        return np.sort(np.frombuffer(lat, dtype=np.int64)).tolist()  # type: ignore[no-any-return]
    except ImportError:
        return sorted(lat)


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1 << 20 if sys.platform == "darwin" else 1 << 10)


# ---------------------------------------------------------------------- yardstick
def yardstick(path: Path, wl: wlmod.Workload, expect: dict[str, Any]) -> dict[str, Any] | None:
    """Time the peer's bare ref_engine on the same stream; None when it is not there."""
    if not path.is_file():
        log(f"yardstick: {path} not found; skipped")
        return None
    spec = importlib.util.spec_from_file_location("_cambio_bench_ref_engine", path)
    if spec is None or spec.loader is None:
        return None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    eng = mod.Engine()
    eng.replay(list(wlmod.iter_rows(wl.prefill)))
    eng.fills.clear()
    ops = list(wlmod.iter_rows(wl.ops))
    gc.collect()
    t = time.perf_counter_ns()
    eng.replay(ops)
    dt = time.perf_counter_ns() - t
    ok = len(eng.fills) == expect.get("n_fills")
    return {"ref_ops_per_s": round(len(wl.ops) / (dt / 1e9)), "ref_fills_ok": ok}


# ---------------------------------------------------------------------- progress
class Progress:
    """A progress indicator on stderr (rich if available), or nothing."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self._rich: Any = None
        self._task: Any = None
        self._plain = False
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._rich = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
                console=Console(stderr=True),
            )
            self._task = self._rich.add_task("replaying", total=total)
            self._rich.start()
        except ImportError:
            self._plain = True

    def __call__(self, done: int) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=done)
        elif self._plain:
            print(f"\rreplaying {done:,}/{self.total:,}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif self._plain:
            print("\r" + " " * 40 + "\r", end="", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        prog="bench/engine.py",
        description=doc.split("\n\n")[0],
        epilog="\n\n".join(doc.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--workload",
        metavar="FILE.npz",
        type=Path,
        help="replay this stream (bench/workload.py or the peer generator's "
        "format) instead of generating one",
    )
    ap.add_argument(
        "--profile",
        choices=sorted(wlmod.PROFILES),
        default="standard",
        help="stream to generate when no --workload (default: standard)",
    )
    ap.add_argument(
        "--ops",
        type=int,
        metavar="N",
        help="replay only the first N ops (expectations are recomputed)",
    )
    ap.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    ap.add_argument(
        "--json",
        action="store_true",
        help="print only the JSON result line (no summary, no progress)",
    )
    ap.add_argument(
        "--gc",
        choices=("tuned", "default", "off"),
        default="tuned",
        help="collector settings for the timed phase (default: tuned = freeze + "
        f"thresholds {GC_TUNED})",
    )
    ap.add_argument(
        "--yardstick",
        action="store_true",
        help="also time the peer's bare ref_engine.py on the same stream",
    )
    ap.add_argument(
        "--ref",
        type=Path,
        default=DEFAULT_REF,
        metavar="PATH",
        help=f"ref_engine.py for --yardstick (default: {DEFAULT_REF})",
    )
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help="where generated streams are kept (default: bench/.cache)",
    )
    ap.add_argument(
        "--cprofile",
        type=int,
        nargs="?",
        const=15,
        metavar="N",
        help="profile the timed phase with cProfile and print the top N "
        "functions by own time to stderr (default 15; slows the run)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    say: Callable[[str], None] = (lambda _m: None) if a.json else log

    # ---- the stream
    if a.workload is not None:
        wl = wlmod.load(a.workload)
    else:
        wl = wlmod.cached(a.profile, a.seed, a.ops, a.cache_dir, quiet=a.json)
    expect = dict(wl.expect)
    if a.ops is not None and a.ops < len(wl.ops):
        wl.ops = wl.ops[: a.ops]
        expect, _, _ = wlmod.replay(wl.prefill, wl.ops)
    if not {"n_fills", "volume", "fill_digest"} <= expect.keys():
        expect, _, _ = wlmod.replay(wl.prefill, wl.ops)
    n = len(wl.ops)

    # ---- the engine, funded and loaded (untimed)
    rp = Replayer(wlmod.max_oid(wl))
    rp.setup(wl.prefill)
    lat = array("q", [0]) * n

    gc.collect()
    if a.gc == "tuned":
        gc.freeze()
        gc.set_threshold(*GC_TUNED)
    elif a.gc == "off":
        gc.disable()

    # ---- the timed phase
    progress = Progress(n, enabled=not a.json and sys.stderr.isatty() and a.cprofile is None)
    profiler = None
    if a.cprofile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        wall_ns = rp.run(wl.ops, lat, progress)
    finally:
        if profiler is not None:
            profiler.disable()
        progress.close()
    rss = peak_rss_mb()
    gc.enable()
    gc.unfreeze()

    # ---- results
    engine_ns = sum(lat)
    s = sort_latencies(lat)
    fills_ok, got = check_fills(rp.fills, expect)
    result: dict[str, Any] = {
        "workload": wl.name,
        "ops": n,
        "ops_per_s": round(n / (engine_ns / 1e9)) if engine_ns else 0,
        "p50_us": round(percentile(s, 0.50), 2),
        "p99_us": round(percentile(s, 0.99), 2),
        "p999_us": round(percentile(s, 0.999), 2),
        "max_stall_ms": round((s[-1] if s else 0) / 1e6, 3),
        "peak_rss_mb": round(rss, 1),
        "fills_ok": fills_ok,
        "wall_ops_per_s": round(n / (wall_ns / 1e9)) if wall_ns else 0,
        "n_fills": got["n_fills"],
        "rejects": rp.rejects,
    }
    if a.yardstick:
        ys = yardstick(a.ref, wl, expect)
        if ys is not None:
            result.update(ys)
            result["ratio"] = round(result["ops_per_s"] / ys["ref_ops_per_s"], 3)

    if not a.json:
        say(
            f"cambio engine, {wl.name}: {n:,} ops, {result['ops_per_s']:,} ops/s engine time "
            f"({engine_ns / 1e9:.2f} s), {result['wall_ops_per_s']:,} ops/s whole loop "
            f"({wall_ns / 1e9:.2f} s)"
        )
        say(
            f"  apply latency: p50 {result['p50_us']} us, p99 {result['p99_us']} us, "
            f"p99.9 {result['p999_us']} us, max {result['max_stall_ms']} ms; "
            f"peak RSS {result['peak_rss_mb']} MB; gc {a.gc}"
        )
        if n:
            worst = lat.index(s[-1])
            say(
                f"  slowest apply: op #{worst:,} "
                f"{wlmod.rows_between(wl.ops, worst, worst + 1)[0]} (op, oid, side, price, qty)"
            )
        verdict = "ok" if fills_ok else "MISMATCH"
        say(
            f"  fills: {got['n_fills']:,} (expected {expect.get('n_fills'):,}), volume "
            f"{got['volume']:,} (expected {expect.get('volume'):,}), digest {verdict}; "
            f"{rp.rejects:,} rejected commands"
        )
        if "ratio" in result:
            say(
                f"  yardstick ref_engine: {result['ref_ops_per_s']:,} ops/s, ratio "
                f"{result['ratio']}"
            )
    if rp.first_reject is not None:
        i, row, ev = rp.first_reject
        log(f"first rejected command: op #{i} row {row}: {ev!r}")
    if profiler is not None:
        import pstats

        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(a.cprofile)
    if not fills_ok:
        log("fills differ from the stream's expectations; diagnosing...")
        diagnose(wl, rp, log)
    print(json.dumps(result), flush=True)
    return 0 if fills_ok else 1


if __name__ == "__main__":
    sys.exit(main())
