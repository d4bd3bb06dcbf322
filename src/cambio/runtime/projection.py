"""Feeding the read models from the event stream, in a thread of their own.

The sequencer hands each applied batch to `push` (cheap: a deque append on the event
loop); the projection thread writes batches to the read models, one transaction each.
Read models are never allowed to slow the engine: past `MAX_QUEUED` commands waiting,
`push` drops batches, and the thread later fills the gap from the events recorded in the
journal. The same path catches up after a restart. Projection is idempotent by sequence
number (cambio.store), so a crash in the middle of a write only repeats work.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence

from cambio.journal.segments import Journal
from cambio.model.commands import Command
from cambio.model.config import MarketConfig
from cambio.model.events import Event
from cambio.store.projector import ReadModels

log = logging.getLogger("cambio.projection")

MAX_QUEUED = 200_000  # commands held in memory for the projection, at most
CATCH_UP_CHUNK = 2_000  # commands per transaction when reading back from the journal

Item = tuple[int, int, Sequence[Event]]


class Projection:
    def __init__(self, url: str, config: MarketConfig, journal: Journal) -> None:
        self.url = url
        self.config = config
        self.journal = journal
        self.projected_seq = 0
        self._queue: deque[Item] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="projection", daemon=True)
        self._ready = threading.Event()
        self._open_error: Exception | None = None

    def start(self) -> None:
        """Start the thread once the read models are open (raises if they cannot be)."""
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    def push(self, cmds: list[Command], results: list[list[Event]]) -> None:
        with self._cond:
            if len(self._queue) < MAX_QUEUED:
                self._queue.extend(
                    (c.seq, c.ts, events) for c, events in zip(cmds, results, strict=True)
                )
            self._cond.notify()

    def stop(self) -> None:
        """Project what is queued (and recorded), then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        try:
            models = ReadModels(self.url, self.config)
            self.projected_seq = models.last_seq()
        except Exception as exc:
            self._open_error = exc
            return
        finally:
            self._ready.set()
        try:
            while True:
                with self._cond:
                    if not self._queue and not self._stopping:
                        self._cond.wait(0.5)
                    items = list(self._queue)
                    self._queue.clear()
                    stopping = self._stopping
                try:
                    self._project(models, items)
                except Exception:
                    if stopping:  # the next start catches up from the journal
                        log.exception("read model projection failed while stopping")
                        return
                    log.exception("read model projection failed; retrying from the journal")
                    with self._cond:
                        self._cond.wait(1.0)
                    continue
                if stopping:
                    with self._cond:
                        if not self._queue:
                            return
        finally:
            models.close()

    def _project(self, models: ReadModels, items: list[Item]) -> None:
        last = models.last_seq()
        first = items[0][0] if items else self.journal.outputs_through + 1
        if first > last + 1:
            # a gap (dropped under load, or a restart): read it back from the journal
            last = project_from_journal(models, self.journal, before=first, done=self._done)
        if items and items[0][0] > last + 1:
            # the gap's events are not journaled yet (they ride with the next write); when
            # stopping they never will be (a halted sequencer): the next start catches up
            with self._cond:
                if not self._stopping:
                    self._queue.extendleft(reversed(items))
                    self._cond.wait(0.05)
            return
        if items:
            self._apply(models, items)

    def _apply(self, models: ReadModels, items: list[Item]) -> int:
        self.projected_seq = seq = models.apply(items)
        return seq

    def _done(self, seq: int, count: int) -> None:
        self.projected_seq = seq


def project_from_journal(
    models: ReadModels,
    journal: Journal,
    before: int | None = None,
    done: Callable[[int, int], None] | None = None,
) -> int:
    """Project the events the journal recorded after the read models' last seq (up to,
    not including, `before`), CATCH_UP_CHUNK commands a transaction; `done(seq, n)` after
    each. Returns the read models' last seq."""
    last = models.last_seq()
    chunk: list[Item] = []
    for item in journal.events(last + 1):
        if before is not None and item[0] >= before:
            break
        chunk.append(item)
        if len(chunk) == CATCH_UP_CHUNK:
            last = models.apply(chunk)
            if done is not None:
                done(last, len(chunk))
            chunk = []
    if chunk:
        last = models.apply(chunk)
        if done is not None:
            done(last, len(chunk))
    return last
