"""Benchmark cambio's durable runtime: sequencer + journal, replay, and cold start.

Three measurements, in one command (``.venv/bin/python bench/journal.py``):

1. Durable commands/s. ``Sequencer`` + ``Journal`` (a real ``fdatasync`` per group commit,
   on a scratch directory on the same disk as the repository, never tmpfs) +
   ``InProcessHost``, in one asyncio process. The commands are the standard stream of
   ``bench/workload.py`` converted exactly as ``bench/engine.py`` converts it: its
   ``Replayer`` is run once, untimed, over a shadow engine and every command it applies is
   recorded (so an amend's ``order_qty`` is computed from the same state as in the engine
   bench). The funding deposits and the prefill book go through the sequencer too, but
   untimed. The timed phase is a closed loop: a fixed number of commands in flight, each
   acknowledgement (a resolved ``submit()`` future) sending the next one. Acknowledgement
   latency is ``perf_counter_ns`` from ``submit()`` to the future's done-callback. Runs:
   ``max_batch`` 1 and 64 and adaptive (4096) with 2048 in flight, and adaptive with 1 in
   flight (light-load latency). Average batch = commands / ``Sequencer.batches``.
2. Replay from the journal the adaptive run wrote (deposits, prefill and ops): ``Replayer``
   over a fresh ``InProcessHost`` and over a ``SubprocessHost``, each checked to end in the
   live engine's ``chain()`` and ``state_hash()`` with no event mismatch.
3. Cold start: a data directory whose engine holds N resting limit orders (1,000,000; 50,000
   with ``--quick``) on the bench market (its ``markets.toml`` is written from
   ``bench_config()`` and checked to load back equal). Commands are journaled in big
   batches while an ``InProcessHost`` applies them, then a snapshot is written at the last
   seq. The data directory's pages are dropped from the page cache (``posix_fadvise``), then
   a fresh interpreter runs ``recover(DataDir, make_host)`` (snapshot restore, empty tail).
   Reported: the wall time from launching the process to a recovered engine (interpreter
   start-up and imports included; the check and the teardown after it are not), the
   ``recover()`` call alone, and peak RSS; its ``state_hash()`` must equal the builder's.

Targets (from the issue): >= 100k durable commands/s adaptive on the standard workload
(2048 and 8192 in flight are both shown: with 2048 every batch takes all of them, so disk
and engine take turns; with 8192 two 4096 batches overlap); replay >= 300k commands/s (the
in-process host); cold start with 1M resting orders < 10 s (the process wall time).

Garbage collection is tuned as in ``bench/engine.py`` (``gc.freeze()`` after setup,
thresholds (100000, 50, 100)) unless ``--gc default``; the subprocess engine and the
cold-start process always run with CPython's defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, cast
from unittest import mock

import engine as eng
import msgspec
import workload as wlmod
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cambio.journal.segments import Journal
from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import GTC, LIMIT, AddOrder, AnyCommand, Command, Deposit
from cambio.model.config import build_config, load_config
from cambio.model.events import Event, OrderRejected
from cambio.runtime.datadir import DataDir
from cambio.runtime.host import EngineHost, InProcessHost
from cambio.runtime.replay import Replayer
from cambio.runtime.sequencer import Sequencer
from cambio.runtime.subprocess_host import SubprocessHost

REPO = eng.BENCH_DIR.parent
FALLBACK_SCRATCH = REPO / ".bench-tmp"
SETUP_BATCH = 4096  # max_batch while the untimed deposits and prefill go through
COLD_BATCH = 50_000  # commands per journal write when building the cold-start directory
COLD_LEVELS = 10_000  # price levels per side of the cold-start book
TICK = 4096  # acknowledgements between progress updates
TARGET_DURABLE = 100_000
TARGET_REPLAY = 300_000
TARGET_COLD_S = 10.0

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[AnyCommand])


@dataclass(frozen=True)
class Sizes:
    ops: int  # the adaptive runs (the last one's journal is replayed)
    batch64: int
    batch1: int
    light: int
    cold_orders: int


FULL = Sizes(1_000_000, 200_000, 5_000, 3_000, 1_000_000)
QUICK = Sizes(50_000, 10_000, 500, 500, 50_000)
LOADED = (2048, 8192)  # commands in flight for the loaded runs


# ---------------------------------------------------------------------- output
class Bar:
    """A rich progress bar on stderr when it is a terminal; phase notes on stderr."""

    def __init__(self, enabled: bool, quiet: bool) -> None:
        self.quiet = quiet
        self._p: Progress | None = None
        self._task: Any = None
        if enabled:
            self._p = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._p.start()

    def phase(self, description: str, total: int) -> None:
        if self._p is not None:
            if self._task is not None:
                self._p.remove_task(self._task)
            self._task = self._p.add_task(description, total=total)

    def update(self, done: int) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=done)

    def advance(self, n: int) -> None:
        if self._p is not None:
            self._p.advance(self._task, n)

    def note(self, msg: str) -> None:
        if self._p is not None:
            self._p.console.print(Text(msg))
        elif not self.quiet:
            eng.log(msg)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


# ---------------------------------------------------------------------- scratch space
def is_tmpfs(path: Path) -> bool:
    """Whether the file system holding `path` is tmpfs/ramfs (per /proc/mounts)."""
    best, fstype = "", ""
    real = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return False
    for line in mounts:
        parts = line.split()
        mnt = parts[1]
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
            best, fstype = mnt, parts[2]
    return fstype in ("tmpfs", "ramfs")


def scratch_root(explicit: Path | None) -> Path:
    """The system temp dir if it is on the repository's disk and not tmpfs, else .bench-tmp."""
    if explicit is not None:
        explicit.mkdir(parents=True, exist_ok=True)
        return explicit
    tmp = Path(tempfile.gettempdir())
    if tmp.stat().st_dev == REPO.stat().st_dev and not is_tmpfs(tmp):
        return tmp
    FALLBACK_SCRATCH.mkdir(exist_ok=True)
    return FALLBACK_SCRATCH


# ---------------------------------------------------------------------- the bench market
def bench_doc() -> dict[str, Any]:
    """The TOML document bench_config() builds its MarketConfig from (captured, not copied)."""
    with mock.patch.object(eng, "build_config", wraps=build_config) as spy:
        eng.bench_config()
    doc: dict[str, Any] = spy.call_args.args[0]
    return doc


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for these plain ASCII values
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def write_bench_toml(path: Path) -> Path:
    """Write the bench market as markets.toml; check it loads back as bench_config()."""
    lines: list[str] = []
    for key, val in bench_doc().items():
        tables = [val] if isinstance(val, dict) else val
        for table in tables:
            lines.append(f"[{key}]" if isinstance(val, dict) else f"[[{key}]]")
            lines += [f"{k} = {toml_value(x)}" for k, x in table.items()]
            lines.append("")
    path.write_text("\n".join(lines), "utf-8")
    if load_config(path) != eng.bench_config():
        raise SystemExit(f"{path}: does not load back as bench_config()")
    return path


# ---------------------------------------------------------------------- the command stream
class Recorder:
    """Stands in for Replayer.ex: applies to the shadow engine and records each command."""

    def __init__(self, ex: Any) -> None:
        self.ex = ex
        self.cmds: list[Command] = []

    def apply(self, cmd: Command) -> list[Event]:
        self.cmds.append(cmd)
        out: list[Event] = self.ex.apply(cmd)
        return out

    def order(self, oid: int) -> Any:
        return self.ex.order(oid)

    def take(self) -> bytes:
        blob, self.cmds = _encoder.encode(self.cmds), []
        return blob


@dataclass
class Stream:
    """The standard workload as commands, msgpack-encoded (decoded afresh for each run)."""

    setup: bytes  # funding deposits + prefill orders
    chunks: list[bytes]  # the ops, eng.CHUNK commands per chunk
    n_setup: int
    fills_ok: bool
    rejects: int

    def setup_commands(self) -> list[Command]:
        return cast(list[Command], _decoder.decode(self.setup))

    def op_commands(self, n: int) -> list[Command]:
        out: list[Command] = []
        for blob in self.chunks:
            if len(out) >= n:
                break
            out += _decoder.decode(blob)
        return out[:n]


def build_stream(n_ops: int, bar: Bar) -> Stream:
    """Convert the first `n_ops` of the standard stream with bench/engine.py's Replayer."""
    wl = wlmod.cached("standard", 1, None, eng.DEFAULT_CACHE, quiet=bar.quiet)
    ops = wl.ops[:n_ops]
    expect = wl.expect if n_ops >= len(wl.ops) else wlmod.replay(wl.prefill, ops)[0]
    rp = eng.Replayer(wlmod.max_oid(wl))
    rec = Recorder(rp.ex)
    rp.ex = cast(Any, rec)
    rp.setup(wl.prefill)
    n_setup = len(rec.cmds)
    setup = rec.take()
    chunks: list[bytes] = []
    bar.phase("converting the stream", len(ops))
    for lo in range(0, len(ops), eng.CHUNK):
        for i, row in enumerate(wlmod.rows_between(ops, lo, lo + eng.CHUNK)):
            rp._apply(row, lo + i)
        chunks.append(rec.take())
        bar.update(min(len(ops), lo + eng.CHUNK))
    fills_ok, _ = eng.check_fills(rp.fills, expect)
    return Stream(setup, chunks, n_setup, fills_ok, rp.rejects)


# ---------------------------------------------------------------------- garbage collector
def gc_tune(mode: str) -> None:
    if mode == "tuned":
        gc.collect()
        gc.freeze()
        gc.set_threshold(*eng.GC_TUNED)


def gc_restore() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)


# ---------------------------------------------------------------------- durable runs
class ClosedLoop:
    """Keeps `in_flight` commands submitted; each acknowledgement sends the next command."""

    def __init__(
        self, seqr: Sequencer, cmds: list[Command], in_flight: int, tick: Callable[[int], None]
    ) -> None:
        self.seqr, self.cmds, self.in_flight, self.tick = seqr, cmds, in_flight, tick
        self.sent = array("q", [0]) * len(cmds)
        self.lat = array("q", [0]) * len(cmds)
        self.next = 0
        self.acked = 0
        self.end_ns = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _send(self) -> None:
        i = self.next
        self.next = i + 1
        self.sent[i] = time.perf_counter_ns()
        self.seqr.submit(self.cmds[i]).add_done_callback(lambda f: self._ack(i, f))

    def _ack(self, i: int, fut: asyncio.Future[Any]) -> None:
        self.lat[i] = time.perf_counter_ns() - self.sent[i]
        if fut.exception() is not None and not self.done.done():
            self.done.set_exception(cast(BaseException, fut.exception()))
            return
        self.acked += 1
        if self.acked % TICK == 0:
            self.tick(self.acked)
        if self.next < len(self.cmds):
            self._send()
        elif self.acked == len(self.cmds):
            self.end_ns = time.perf_counter_ns()
            self.done.set_result(None)

    async def run(self) -> int:
        """Run to the last acknowledgement; the elapsed ns."""
        start = time.perf_counter_ns()
        for _ in range(min(self.in_flight, len(self.cmds))):
            self._send()
        await self.done
        return self.end_ns - start


@dataclass
class LiveRun:
    label: str
    max_batch: int
    in_flight: int
    commands: int
    ns: int
    batches: int
    lat: array[int]
    chain: str = ""
    state_hash: str = ""
    journal: Path = field(default_factory=Path)

    @property
    def rate(self) -> float:
        return self.commands / (self.ns / 1e9) if self.ns else 0.0

    def summary(self) -> dict[str, Any]:
        s = eng.sort_latencies(self.lat)
        return {
            "max_batch": self.max_batch,
            "in_flight": self.in_flight,
            "commands": self.commands,
            "cmds_per_s": round(self.rate),
            "avg_batch": round(self.commands / self.batches, 1) if self.batches else 0,
            "p50_us": round(eng.percentile(s, 0.5), 1),
            "p99_us": round(eng.percentile(s, 0.99), 1),
            "p999_us": round(eng.percentile(s, 0.999), 1),
        }


async def live_run(
    label: str,
    max_batch: int,
    in_flight: int,
    cmds: list[Command],
    setup: list[Command],
    workdir: Path,
    gc_mode: str,
    bar: Bar,
    profiler: Any = None,
) -> LiveRun:
    """Fund and prefill through the sequencer (untimed), then time `cmds` in a closed loop."""
    journal = Journal(workdir / "journal")
    host = InProcessHost(eng.bench_config())
    seqr = Sequencer(journal, host, max_batch=SETUP_BATCH)
    runner = asyncio.get_running_loop().create_task(seqr.run())
    try:
        for cmd in setup[:-1]:
            seqr.submit_nowait(cmd)
        await seqr.submit(setup[-1])
        gc_tune(gc_mode)
        seqr.max_batch = max_batch
        batches = seqr.batches
        bar.phase(label, len(cmds))
        loop = ClosedLoop(seqr, cmds, in_flight, bar.update)
        if profiler is not None:
            profiler.enable()
        ns = await loop.run()
        if profiler is not None:
            profiler.disable()
        batches = seqr.batches - batches
    finally:
        seqr.stop()
        await runner
        await seqr.flush_outputs()
        seqr.close()
        journal.close()
        gc_restore()
    run = LiveRun(label, max_batch, in_flight, len(cmds), ns, batches, loop.lat)
    run.chain, run.state_hash, run.journal = host.chain(), host.state_hash(), journal.dir
    return run


# ---------------------------------------------------------------------- replay
@dataclass
class ReplayRun:
    label: str
    commands: int
    seconds: float
    mismatches: int
    same_end: bool

    def summary(self) -> dict[str, Any]:
        return {
            "commands": self.commands,
            "cmds_per_s": round(self.commands / self.seconds) if self.seconds else 0,
            "seconds": round(self.seconds, 2),
            "event_mismatches": self.mismatches,
            "same_chain_and_state_hash": self.same_end,
        }


def replay(label: str, live: LiveRun, host: EngineHost, gc_mode: str, bar: Bar) -> ReplayRun:
    journal = Journal(live.journal, readonly=True)
    bar.phase(label, journal.last_seq)
    rp = Replayer(journal, host)
    gc_tune(gc_mode)
    try:
        rp.run(progress=bar.advance)
    finally:
        gc_restore()
        journal.close()
    same = host.chain() == live.chain and host.state_hash() == live.state_hash
    host.close()
    return ReplayRun(label, rp.commands, rp.seconds, len(rp.mismatches), same)


# ---------------------------------------------------------------------- cold start
CHILD = """\
import json, os, resource, sys, time
t0 = time.perf_counter()
from cambio.runtime.datadir import DataDir
from cambio.runtime.host import InProcessHost
from cambio.runtime.recovery import recover
data = DataDir(sys.argv[1])
config = data.config()
t1 = time.perf_counter()
rec = recover(data, lambda snap: InProcessHost(config, snap))
t2 = time.perf_counter()
done = time.time()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"imports_s": t1 - t0, "recover_s": t2 - t1, "peak_rss_mb": rss,
    "done_wall": done, "snapshot_seq": rec.snapshot_seq, "replayed": rec.replayed,
    "state_hash": rec.host.state_hash()}), flush=True)
os._exit(0)  # the state hash above and the interpreter's teardown are not timed
"""


def cold_commands(n_orders: int) -> Iterator[Command]:
    """Funding deposits, then `n_orders` GTC limits: bids below and asks above the mid."""
    seq = 0
    for acct in range(1, 2 * eng.N_ACCOUNTS + 1):
        for asset in (eng.BASE, eng.QUOTE):
            seq += 1
            yield Deposit(
                seq=seq, ts=eng.T0 + seq * eng.DT, account=acct, asset=asset, amount=eng.FUNDING
            )
    for i in range(n_orders):
        seq += 1
        side = i & 1
        level = 1 + (i >> 1) % COLD_LEVELS
        yield AddOrder(
            seq=seq,
            ts=eng.T0 + seq * eng.DT,
            account=eng.account_of(i, side),
            pair=eng.PAIR,
            side=side,
            ordertype=LIMIT,
            qty=1 + (i * 7919) % wlmod.MAX_Q,
            price=wlmod.P0 - level if side == 0 else wlmod.P0 + level,
            tif=GTC,
        )


def build_cold_dir(root: Path, toml: Path, n_orders: int, bar: Bar) -> tuple[int, str]:
    """Journal and apply the cold-start commands, snapshot at the end: (last seq, state hash)."""
    data = DataDir(root)
    data.create(markets=toml)
    host = InProcessHost(data.config())
    journal = Journal(data.journal)
    commands = cold_commands(n_orders)
    outs: list[list[Event]] = []
    bar.phase("building the cold-start directory", n_orders + 4 * eng.N_ACCOUNTS)
    while batch := list(islice(commands, COLD_BATCH)):
        journal.append(batch, journal.outputs_through + 1, outs)
        outs = host.apply(batch)
        if any(type(e) is OrderRejected for evs in outs for e in evs):
            raise SystemExit("cold start: the engine rejected a resting order")
        bar.advance(len(batch))
    journal.append([], journal.outputs_through + 1, outs)
    SnapshotStore(data.snapshots).write(journal.last_seq, host.snapshot())
    journal.close()
    return journal.last_seq, host.state_hash()


def drop_cache(root: Path) -> None:
    """Evict the directory's (clean, fsynced) pages from the page cache: a cold read."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cold_start(work: Path, toml: Path, n_orders: int, bar: Bar) -> dict[str, Any]:
    root = work / "cold"
    last_seq, want_hash = build_cold_dir(root, toml, n_orders, bar)
    size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
    gc.collect()
    drop_cache(root)
    bar.phase("cold start (recover in a fresh process)", 1)
    launched = time.time()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root)], check=True, capture_output=True, text=True
    )
    child = json.loads(out.stdout.strip().splitlines()[-1])
    wall = child["done_wall"] - launched  # exec, imports and recover(); not the teardown
    shutil.rmtree(root)
    return {
        "resting_orders": n_orders,
        "market": f"{eng.PAIR} (bench market, markets.toml written from bench_config())",
        "data_dir_mb": round(size_mb, 1),
        "process_s": round(wall, 2),
        "recover_s": round(child["recover_s"], 2),
        "imports_s": round(child["imports_s"], 2),
        "peak_rss_mb": round(child["peak_rss_mb"], 1),
        "snapshot_seq": child["snapshot_seq"],
        "journal_last_seq": last_seq,
        "tail_replayed": child["replayed"],
        "state_hash_ok": child["state_hash"] == want_hash,
    }


# ---------------------------------------------------------------------- the whole bench
async def durable_runs(
    stream: Stream, sz: Sizes, work: Path, gc_mode: str, bar: Bar, profiler: Any
) -> list[LiveRun]:
    big, deep = LOADED
    plan = [
        ("batch1", 1, big, sz.batch1),
        ("batch64", 64, big, sz.batch64),
        ("light_adaptive", 4096, 1, sz.light),
        (f"adaptive_{big}", 4096, big, sz.ops),
        (f"adaptive_{deep}", 4096, deep, sz.ops),
    ]
    runs = []
    for i, (label, max_batch, in_flight, n) in enumerate(plan):
        cmds, setup = stream.op_commands(n), stream.setup_commands()
        prof = profiler if i == len(plan) - 1 else None
        run = await live_run(
            label, max_batch, in_flight, cmds, setup, work / f"run{i}", gc_mode, bar, prof
        )
        bar.note(f"{label}: {run.summary()}")
        runs.append(run)
        if i < len(plan) - 1:
            shutil.rmtree(work / f"run{i}")
    return runs


def run_all(a: argparse.Namespace, work: Path, bar: Bar) -> dict[str, Any]:
    sz = QUICK if a.quick else FULL
    profiler = None
    if a.cprofile is not None:
        import cProfile

        profiler = cProfile.Profile()
    stream = build_stream(sz.ops, bar)
    bar.note(
        f"stream: {stream.n_setup:,} setup + {sz.ops:,} op commands, fills ok "
        f"{stream.fills_ok}, {stream.rejects} rejects (shadow engine)"
    )
    runs = asyncio.run(durable_runs(stream, sz, work, a.gc, bar, profiler))
    adaptive = runs[-1]
    toml = write_bench_toml(work / "markets.toml")
    replays = [
        replay("replay, InProcessHost", adaptive, InProcessHost(eng.bench_config()), a.gc, bar),
        replay("replay, SubprocessHost", adaptive, SubprocessHost(toml), a.gc, bar),
    ]
    for r in replays:
        bar.note(f"{r.label}: {r.summary()}")
    shutil.rmtree(adaptive.journal.parent)
    cold = cold_start(work, toml, sz.cold_orders, bar)
    bar.note(f"cold start: {cold}")
    if profiler is not None:
        import pstats

        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(a.cprofile)
    return result_doc(a, stream, runs, replays, cold)


def result_doc(
    a: argparse.Namespace,
    stream: Stream,
    runs: list[LiveRun],
    replays: list[ReplayRun],
    cold: dict[str, Any],
) -> dict[str, Any]:
    durable = {r.label: r.summary() for r in runs}
    rep = {k: r.summary() for k, r in zip(["inprocess", "subprocess"], replays, strict=True)}
    best = max(r.rate for r in runs if r.max_batch == 4096 and r.in_flight > 1)
    return {
        "workload": "standard" + (" (quick)" if a.quick else ""),
        "stream_fills_ok": stream.fills_ok,
        "gc": a.gc,
        "durable": durable,
        "replay": rep,
        "cold_start": cold,
        "targets": {
            "durable_adaptive_100k": best >= TARGET_DURABLE,
            "replay_300k": rep["inprocess"]["cmds_per_s"] >= TARGET_REPLAY,
            "cold_start_10s": cold["process_s"] < TARGET_COLD_S,
        },
    }


def verdict(ok: bool) -> str:
    return "[green]met[/]" if ok else "[red]missed[/]"


def durable_row(r: dict[str, Any]) -> list[str]:
    mode = "adaptive" if r["max_batch"] == 4096 else f"max_batch {r['max_batch']}"
    loaded = mode == "adaptive" and r["in_flight"] > 1
    target = f"≥ 100k {verdict(r['cmds_per_s'] >= TARGET_DURABLE)}" if loaded else ""
    return [
        f"durable, {mode}, {r['in_flight']} in flight",
        f"{r['commands']:,}",
        f"{r['cmds_per_s']:,} cmds/s",
        f"{r['p50_us']:,.0f} / {r['p99_us']:,.0f} / {r['p999_us']:,.0f}",
        f"{r['avg_batch']:,}",
        "",
        target,
    ]


def replay_row(key: str, r: dict[str, Any]) -> list[str]:
    same = r["same_chain_and_state_hash"] and not r["event_mismatches"]
    target = f"≥ 300k {verdict(r['cmds_per_s'] >= TARGET_REPLAY)}" if key == "inprocess" else ""
    check = "same chain + state" if same else "[red]DIFFERENT[/]"
    rate = f"{r['cmds_per_s']:,} cmds/s"
    return [f"replay, {key} host", f"{r['commands']:,}", rate, "", "", check, target]


def cold_row(c: dict[str, Any]) -> list[str]:
    check = f"state {'ok' if c['state_hash_ok'] else '[red]WRONG[/]'}, RSS {c['peak_rss_mb']:,} MB"
    return [
        f"cold start, {c['resting_orders']:,} orders",
        f"{c['journal_last_seq']:,}",
        f"{c['process_s']} s (recover() {c['recover_s']} s)",
        "",
        "",
        check,
        f"< 10 s {verdict(c['process_s'] < TARGET_COLD_S)}",
    ]


def print_table(doc: dict[str, Any]) -> None:
    t = Table(title=f"cambio journal + runtime: {doc['workload']} workload, gc {doc['gc']}")
    t.add_column("measure", no_wrap=True)
    for col in ("commands", "result", "p50 / p99 / p99.9 µs", "avg batch", "check", "target"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in doc["durable"].values():
        t.add_row(*durable_row(r))
    for key, r in doc["replay"].items():
        t.add_row(*replay_row(key, r))
    t.add_row(*cold_row(doc["cold_start"]))
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)
    console.print(t)
    console.print(f"cold start market: {doc['cold_start']['market']}", highlight=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        prog="bench/journal.py",
        description=doc.split("\n\n")[0],
        epilog="\n\n".join(doc.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="a small smoke run (50k ops/orders)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result line")
    ap.add_argument(
        "--gc",
        choices=("tuned", "default"),
        default="tuned",
        help="collector settings for the timed phases (default: tuned)",
    )
    ap.add_argument(
        "--tmp-dir",
        type=Path,
        metavar="DIR",
        help="scratch directory (default: the temp dir if it is on the repository's "
        "disk and not tmpfs, else .bench-tmp/); removed afterwards",
    )
    ap.add_argument(
        "--cprofile",
        type=int,
        nargs="?",
        const=20,
        metavar="N",
        help="cProfile the event loop thread of the last run (adaptive, 8192 in flight); "
        "print the top N functions by own time to stderr",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    scratch = scratch_root(a.tmp_dir)
    work = Path(tempfile.mkdtemp(prefix="cambio-journal-bench-", dir=scratch))
    bar = Bar(enabled=sys.stderr.isatty() and not a.json, quiet=a.json)
    bar.note(f"scratch directory: {work} (tmpfs: {is_tmpfs(work)})")
    try:
        doc = run_all(a, work, bar)
    finally:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
        if scratch == FALLBACK_SCRATCH and not any(scratch.iterdir()):
            scratch.rmdir()
    if not a.json:
        print_table(doc)
    print(json.dumps(doc), flush=True)
    ok = all(r["same_chain_and_state_hash"] for r in doc["replay"].values())
    return 0 if ok and doc["cold_start"]["state_hash_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
