"""Shadowing: a second engine follows the live exchange, comparing every event.

Before a cutover the shadow is the candidate: it starts from production's newest
snapshot (or genesis), catches up from the journal, then follows the live stream: each
batch the primary applied reaches it with the primary's events, which it compares with
its own. After a cutover the shadow is the old engine, kept warm for rollback.

It runs in a thread of its own, fed by a queue (`push`, a sequencer hook, only appends),
so it never slows the primary; how far behind it is, is `lag`. The seam between journal
and live stream is exact: the hook is registered on the event loop together with the
seq it starts after and the events the journal may not hold yet
(`Sequencer.follow`).

A difference the candidate declared (cambio.upgrade.changes) is counted. Any other is a
divergence: before a cutover the shadow stops there and reports it (the rehearsal's
report); after one it keeps applying, so the old engine stays current for the rollback
the divergence calls for (`on_divergence`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from cambio.journal.segments import Journal
from cambio.model.commands import Command
from cambio.model.events import Event
from cambio.runtime.host import EngineHost
from cambio.runtime.replay import Mismatch, Replayer
from cambio.upgrade.changes import Change, Judge
from cambio.upgrade.rehearse import Divergence

log = logging.getLogger("cambio.upgrade.shadow")
MAX_QUEUED = 1_000_000  # commands a shadow may fall behind before it gives up
_encoder = msgspec.msgpack.Encoder()

Batch = tuple[list[Command], list[list[Event]]]


@dataclass
class ShadowStatus:
    state: str  # starting, catching_up, following, diverged, failed, stopped
    applied_seq: int
    declared: dict[str, int]
    divergence: Divergence | None
    error: str | None


@dataclass
class Shadow:
    """An engine following the primary (see the module docstring)."""

    make_host: Callable[[], EngineHost]  # builds the engine at `start_seq`
    journal_dir: Path
    start_seq: int  # the state `make_host` starts in
    follow_from: int  # the hook delivers every batch after this seq
    known: dict[int, list[Event]]  # primary's events the journal may not hold yet
    changes: list[Change] = field(default_factory=list)
    # the state hash `make_host`'s engine must report (a future: computed meanwhile)
    start_hash: Future[str] | None = None
    following_since: float | None = None  # wall time it caught up (time.time())
    timings: dict[str, float] = field(default_factory=dict)  # seconds per start step
    stop_on_divergence: bool = True  # False after a cutover: keep the old engine current
    on_divergence: Callable[[Divergence], None] | None = None  # called from the thread
    host: EngineHost | None = None
    state: str = "starting"
    applied_seq: int = 0
    divergence: Divergence | None = None
    error: str | None = None
    judge: Judge = field(init=False)
    _queue: queue.Queue[Batch | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _release: bool = False  # detach: leave the host open for whoever takes it

    def __post_init__(self) -> None:
        self.applied_seq = self.start_seq
        self.judge = Judge(self.changes)

    # ------------------------------------------------------------------ the primary's side
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def push(self, cmds: list[Command], results: list[list[Event]]) -> None:
        """The sequencer hook: hand a batch over, never wait."""
        if self.state in ("failed", "stopped") or (
            self.state == "diverged" and self.stop_on_divergence
        ):
            return  # nobody will apply it
        if cmds[-1].seq - self.applied_seq > MAX_QUEUED:  # applied_seq: the thread's
            self.state, self.error = "failed", f"fell more than {MAX_QUEUED:,} commands behind"
            return
        self._queue.put((cmds, results))

    def lag(self, primary_seq: int) -> int:
        return max(0, primary_seq - self.applied_seq)

    def status(self) -> ShadowStatus:
        counts = {name: d.count for name, d in self.judge.declared.items()}
        return ShadowStatus(self.state, self.applied_seq, counts, self.divergence, self.error)

    def stop(self) -> None:
        """End the thread and close the engine."""
        self._finish(release=False)

    def detach(self) -> EngineHost:
        """End the thread once everything queued is applied and hand the engine over,
        open (for a cutover). Raises if the shadow is not in a state to be taken."""
        current = self.state == "following" or (
            self.state == "diverged" and not self.stop_on_divergence
        )
        if not current or self.host is None:
            raise RuntimeError(f"the shadow is {self.state}: {self.error or 'not following'}")
        host = self.host
        self._finish(release=True)
        if self.state == "failed":
            raise RuntimeError(f"the shadow failed while draining: {self.error}")
        return host

    def _finish(self, release: bool) -> None:
        self._release = release
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()
        if self.state not in ("diverged", "failed"):
            self.state = "stopped"

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        try:
            step = time.perf_counter()
            self.host = self.make_host()
            step = self._took("restore", step)
            if self.start_hash is not None:
                restored = self.host.state_hash()
                step = self._took("state_hash", step)
                expected = self.start_hash.result()
                step = self._took("expected_hash_wait", step)
                if restored != expected:
                    # a restore that loses state (which events may show only much later)
                    self.state = "diverged"
                    self.error = (
                        f"its state after restoring the snapshot at seq {self.start_seq} "
                        f"hashes to {restored}, the snapshot to {expected}"
                    )
                    return
            if not self._catch_up():
                return
            self._took("catch_up", step)
            self.following_since = time.time()
            self.state = "following"
            while (batch := self._queue.get()) is not None:
                self._follow(*batch)
                if self.state == "diverged" and self.stop_on_divergence:
                    break
        except Exception as exc:
            log.exception("shadow engine failed")
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            kept = self._release and self.state in ("following", "diverged")
            if self.host is not None and not kept:
                self.host.close()

    def _took(self, what: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[what] = round(now - since, 3)
        return now

    def _catch_up(self) -> bool:
        """Replay the journal up to `follow_from`, compared with what it recorded and
        with `known`; False if a divergence stopped it."""
        self.state = "catching_up"
        assert self.host is not None
        journal = Journal(self.journal_dir, readonly=True)
        replayer = Replayer(journal, self.host, self.start_seq, on_mismatch=self.judge)
        replayer.run(until=self.follow_from)
        if replayer.stopped is not None:
            self._diverged(replayer.stopped, next(journal.commands(replayer.stopped.seq)))
            return False
        if replayer.applied_seq < self.follow_from:
            raise RuntimeError(
                f"the journal ends at {replayer.applied_seq}, the primary at {self.follow_from}"
            )
        self.applied_seq = replayer.applied_seq
        pending = replayer.pending
        for seq in sorted(pending):
            want = self.known.get(seq)
            if want is None or _encoder.encode(want) == _encoder.encode(pending[seq]):
                continue
            m = Mismatch(seq, want, pending[seq])
            if not self.judge(m):
                self._diverged(m, next(journal.commands(seq)))
                return False
        return True

    def _follow(self, cmds: list[Command], results: list[list[Event]]) -> None:
        assert self.host is not None
        if cmds[-1].seq <= self.applied_seq:  # already replayed from the journal
            return
        fresh = [(c, r) for c, r in zip(cmds, results, strict=True) if c.seq > self.applied_seq]
        mine = self.host.apply([c for c, _ in fresh])
        self.applied_seq = fresh[-1][0].seq
        if self.state == "diverged":
            return
        if _encoder.encode([r for _, r in fresh]) == _encoder.encode(mine):
            return
        for (cmd, want), got in zip(fresh, mine, strict=True):
            if _encoder.encode(want) != _encoder.encode(got):
                m = Mismatch(cmd.seq, list(want), list(got))
                if not self.judge(m):
                    self._diverged(m, cmd)
                    return

    def _diverged(self, m: Mismatch, cmd: Command) -> None:
        self.divergence = Divergence(m.seq, cmd, m.recorded, m.replayed)
        self.state = "diverged"
        log.error("shadow engine diverged at seq %d", m.seq)
        if self.on_divergence is not None:
            self.on_divergence(self.divergence)
