"""The exchange core as a service: recovery, sequencer, ticks, snapshots, read models.

Everything `cambio serve` runs except HTTP (cambio.api.server puts the gateways in front).
`ExchangeService.start()` recovers the engine from the data directory; `run()` drives the
sequencer, injects a `Tick` every `tick_interval` seconds so timers fire, snapshots every
`snapshot_every` commands or `snapshot_interval` seconds, and feeds the read models;
`shutdown()` drains what was accepted, journals the last events, writes a final snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import Command, Tick
from cambio.model.events import Event
from cambio.runtime.datadir import DataDir

if TYPE_CHECKING:
    from cambio.runtime.projection import Projection
from cambio.runtime.host import EngineHost, open_host
from cambio.runtime.recovery import Recovered, recover
from cambio.runtime.sequencer import Sequencer, SequencerStopped

log = logging.getLogger("cambio.runtime")


@dataclass
class ServiceOptions:
    tick_interval: float = 1.0  # seconds between injected Tick commands (0: none)
    snapshot_every: int = 100_000  # commands between snapshots
    snapshot_interval: float = 300.0  # seconds between snapshots (if anything happened)
    max_batch: int = 4096  # commands per group commit, at most
    engine: str = "inprocess"  # or "subprocess"
    engine_python: str = sys.executable  # interpreter of the engine, for "subprocess"


class ExchangeService:
    def __init__(self, data: DataDir, options: ServiceOptions | None = None) -> None:
        self.data = data
        self.options = options or ServiceOptions()
        self.config = data.config()
        self.snapshots = SnapshotStore(data.snapshots)
        self._snap_io = ThreadPoolExecutor(1, thread_name_prefix="snapshot")
        self._snap_pending: asyncio.Future[Path] | None = None
        self._last_snap_seq = 0
        self._last_snap_time = time.monotonic()
        self.recovered: Recovered | None = None
        self.sequencer: Sequencer | None = None
        self.projection: Projection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.on_ack: Callable[[float], None] | None = None  # seconds to answer, for metrics

    def make_host(self, snapshot: bytes | None) -> EngineHost:
        opts = self.options
        return open_host(opts.engine, self.config, self.data.markets, snapshot, opts.engine_python)

    async def execute(self, cmd: Command) -> tuple[int, list[Event]]:
        """Sequence `cmd`; (seq, events) once it is durable and applied."""
        assert self.sequencer is not None
        if self.on_ack is None:
            return await self.sequencer.execute(cmd)
        started = time.perf_counter()
        result = await self.sequencer.execute(cmd)
        self.on_ack(time.perf_counter() - started)
        return result

    async def read_models_current(self, timeout: float = 2.0) -> None:
        """Wait until the read models show every command applied so far, so a query sees
        the caller's own writes (bounded: under a projection backlog, answer anyway)."""
        assert self.sequencer is not None and self.projection is not None
        target = self.sequencer.applied_seq
        deadline = time.monotonic() + timeout
        while self.projection.projected_seq < target and time.monotonic() < deadline:
            await asyncio.sleep(0.001)

    def lags(self) -> dict[str, int]:
        """How far behind each stage is, in commands: `journal` accepted and not yet
        durable, `engine` durable and not yet applied, `readmodels` applied and not yet in
        the read models. Cheap (a few reads): monitors, heartbeats and metrics ask."""
        seq, rec = self.sequencer, self.recovered
        assert seq is not None and rec is not None
        out = {"journal": seq.queued, "engine": rec.journal.last_seq - seq.applied_seq}
        if self.projection is not None:
            out["readmodels"] = seq.applied_seq - self.projection.projected_seq
        return out

    @property
    def host(self) -> EngineHost:
        assert self.recovered is not None
        return self.recovered.host

    def switch_host(self, host: EngineHost) -> EngineHost:
        """Make `host` the primary engine and return the one it replaces. Only with the
        sequencer paused and `host` in the same state (cambio.upgrade.manager checks)."""
        assert self.recovered is not None and self.sequencer is not None
        assert self.sequencer.paused, "switching engines while batches are applied"
        old, self.recovered.host = self.recovered.host, host
        self.sequencer.host = host
        return old

    # ------------------------------------------------------------------ lifecycle
    def start(self, progress: Callable[[int], None] | None = None) -> Recovered:
        """Recover the engine (blocking); call before `run` (inside the event loop)."""
        rec = recover(self.data, self.make_host, progress)
        self.recovered = rec
        self._last_snap_seq = rec.snapshot_seq
        for note in rec.notes:
            log.warning("recovery: %s", note)
        seq = Sequencer(rec.journal, rec.host, max_batch=self.options.max_batch)
        seq.after_batch.append(self._after_batch)
        self.sequencer = seq
        from cambio.runtime.projection import Projection  # SQLAlchemy only when serving

        self.projection = Projection(self.data.readmodels_url, self.config, rec.journal)
        seq.after_batch.append(self.projection.push)
        self.projection.start()
        return rec

    async def run(self) -> None:
        """Run until `shutdown()`; raises if the sequencer failed (a halted exchange)."""
        assert self.sequencer is not None
        loop = asyncio.get_running_loop()
        if self.options.tick_interval > 0:
            self._tasks.append(loop.create_task(self._ticker()))
        try:
            await self.sequencer.run()
        finally:
            for task in self._tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def shutdown(self) -> None:
        """Stop intake; `run()` returns once everything accepted is applied."""
        if self.sequencer is not None:
            self.sequencer.stop()

    async def finish(self) -> None:
        """After `run()` returned cleanly: record the last events, take a final snapshot,
        let the read models catch up, release everything."""
        seq = self.sequencer
        assert seq is not None and self.recovered is not None
        if seq.failure is None:
            await seq.flush_outputs()
            if self._snap_pending is not None:
                with contextlib.suppress(Exception):  # logged when it failed
                    await self._snap_pending
            if self.recovered.journal.last_seq > self._last_snap_seq:
                await self.snapshot_now()
        seq.close()
        if self.projection is not None:
            self.projection.stop()
        self._snap_io.shutdown(wait=True)
        self.recovered.host.close()
        self.recovered.journal.close()

    # ------------------------------------------------------------------ periodic work
    async def _ticker(self) -> None:
        assert self.sequencer is not None
        while True:
            await asyncio.sleep(self.options.tick_interval)
            try:
                self.sequencer.submit_nowait(Tick())
            except SequencerStopped:  # shutting down (or halted): no more time to tell
                return

    def _after_batch(self, cmds: list[Command], results: list[list[Event]]) -> None:
        if self._snap_pending is not None:
            return
        seq = cmds[-1].seq
        due_count = seq - self._last_snap_seq >= self.options.snapshot_every
        due_time = time.monotonic() - self._last_snap_time >= self.options.snapshot_interval
        if due_count or (due_time and seq > self._last_snap_seq):
            self._begin_snapshot(seq)

    def _begin_snapshot(self, seq: int) -> asyncio.Future[Path]:
        # taken between batches on the loop (the engine is single-threaded); written off it
        body = self.host.snapshot()
        self._last_snap_seq = seq
        self._last_snap_time = time.monotonic()
        fut = asyncio.get_running_loop().run_in_executor(
            self._snap_io, self.snapshots.write, seq, body
        )
        self._snap_pending = fut
        fut.add_done_callback(self._snapshot_done)
        return fut

    def _snapshot_done(self, fut: asyncio.Future[Path]) -> None:
        self._snap_pending = None
        if fut.exception() is not None:
            log.error("snapshot failed (the journal still holds everything): %r", fut.exception())

    async def snapshot_now(self) -> int:
        """Snapshot the current state (waiting for one in flight first); its seq."""
        assert self.sequencer is not None
        if self.sequencer.failure is not None:  # the engine's state is not to be trusted
            raise SequencerStopped(f"exchange halted: {self.sequencer.failure!r}")
        if self._snap_pending is not None:
            await self._snap_pending
        seq = self.sequencer.applied_seq
        await self._begin_snapshot(seq)
        return seq
