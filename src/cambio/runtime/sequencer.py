"""The sequencer: orders commands, makes them durable, has the engine apply them, answers.

Two stages connected by a queue, both on the event loop:

* the writer takes every command waiting (up to `max_batch`), stamps seq and time, and
  writes them to the journal with one fdatasync in a worker thread. While that thread
  waits on the disk, new commands pile up and form the next batch: group commit that
  grows with load and stays at one command when load is light;
* the applier hands each durable batch to the engine host, resolves the callers'
  futures with (seq, events), and passes the batch on to the `after_batch` hooks
  (read models, snapshots, market data). It runs while the writer's next fsync is in
  flight, so disk and engine overlap.

A batch's events are journaled with a later write (see cambio.journal.segments). Nothing
is acknowledged before its command is on disk and the engine has answered it. A failed
write, a failing engine or a failing hook stops the sequencer for good, and the process
must restart and recover from the journal (an fsync that failed cannot be retried
safely). Callers whose command had reached the journal write get `OutcomeUnknown` (the
restart decides, and a journaled command is applied then: resending would repeat it);
callers still queued get `SequencerStopped` (never journaled). A command that cannot be
journaled at all is refused alone, at `submit`, with `InvalidCommand`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import msgspec

from cambio.journal.segments import Journal
from cambio.model.commands import Command
from cambio.model.events import Event
from cambio.runtime.host import EngineHost

AfterBatch = Callable[[list[Command], list[list[Event]]], None]
Result = tuple[int, list[Event]]


class SequencerStopped(Exception):
    """The sequencer is not accepting commands (stopping, or stopped by a failure); the
    command was not journaled and never will be: safe to send again later."""


class OutcomeUnknown(SequencerStopped):
    """The exchange halted after this command reached the journal: it may be (and after
    the journal write, is) applied when the exchange restarts. Check before resending."""


class InvalidCommand(ValueError):
    """A command that cannot be journaled (e.g. an integer beyond 64 bits)."""


_check_encoder = msgspec.msgpack.Encoder()


class Sequencer:
    def __init__(
        self,
        journal: Journal,
        host: EngineHost,
        *,
        max_batch: int = 4096,
        clock: Callable[[], int] = time.time_ns,
        unrecorded: list[list[Event]] | None = None,
    ) -> None:
        self.journal = journal
        self.host = host
        self.max_batch = max_batch
        self.clock = clock
        self.after_batch: list[AfterBatch] = []
        self.applied_seq = journal.last_seq
        self._next_seq = journal.last_seq + 1
        self._last_ts = journal.last_ts
        # events applied but not yet journaled: they ride along with the next write
        self._unrecorded: list[list[Event]] = list(unrecorded or [])
        self._unrecorded_from = journal.outputs_through + 1
        self._writing: tuple[int, list[list[Event]]] = (0, [])  # events in the write in flight
        self._writing_cmds = 0  # commands in the write in flight
        if self._unrecorded_from + len(self._unrecorded) != self._next_seq:
            raise ValueError("the events handed over must be those of the journal's last commands")
        self._intake: list[tuple[Command, asyncio.Future[Result] | None]] = []
        self._wake = asyncio.Event()
        self._durable: asyncio.Queue[list[tuple[Command, asyncio.Future[Result] | None]] | None] = (
            asyncio.Queue()
        )
        self._io = ThreadPoolExecutor(1, thread_name_prefix="journal")
        self._stopping = False
        self._paused = False
        self._idle = asyncio.Event()  # set while paused and nothing is in flight
        self._in_flight = 0  # batches taken from the intake and not yet applied
        self.failure: BaseException | None = None
        self.batches = 0  # group commits written, for metrics and benchmarks

    # ------------------------------------------------------------------ intake
    def submit(self, cmd: Command) -> asyncio.Future[Result]:
        """Queue `cmd`; the future resolves with (seq, events) once it is durable and
        applied. The command's seq and ts are overwritten by the sequencer."""
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._enqueue(cmd, fut)
        return fut

    def submit_nowait(self, cmd: Command) -> None:
        """Queue `cmd` without anyone waiting for its answer (ticks, bulk loads)."""
        self._enqueue(cmd, None)

    def _enqueue(self, cmd: Command, fut: asyncio.Future[Result] | None) -> None:
        if self._stopping or self.failure is not None:
            raise SequencerStopped(str(self.failure or "the exchange is shutting down"))
        try:
            # refused here, alone, rather than failing the journal write of a whole batch
            _check_encoder.encode(cmd)
        except (OverflowError, TypeError, msgspec.EncodeError) as exc:
            raise InvalidCommand(str(exc)) from None
        self._intake.append((cmd, fut))
        self._wake.set()

    async def execute(self, cmd: Command) -> Result:
        return await self.submit(cmd)

    # ------------------------------------------------------------------ stages
    async def run(self) -> None:
        """Run both stages until `stop()`; re-raises the failure that stopped them."""
        loop = asyncio.get_running_loop()
        applier = loop.create_task(self._apply_loop())
        try:
            await self._write_loop()
        finally:
            await self._durable.put(None)
            await applier
        if self.failure is not None:
            raise self.failure

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._intake or (self._paused and not self._stopping):
                if self._stopping and not self._intake:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._intake[: self.max_batch]
            del self._intake[: self.max_batch]
            self._in_flight += 1
            now = self.clock()
            ts = now if now > self._last_ts else self._last_ts
            seq = self._next_seq
            cmds = []
            for cmd, _ in batch:
                cmd.seq = seq
                cmd.ts = ts
                seq += 1
                cmds.append(cmd)
            outs, out_seq = self._unrecorded, self._unrecorded_from
            self._unrecorded = []
            self._unrecorded_from += len(outs)
            self._writing = (out_seq, outs)
            self._writing_cmds = len(cmds)
            try:
                await loop.run_in_executor(self._io, self.journal.append, cmds, out_seq, outs)
            except BaseException as exc:
                self._fail(exc, batch)
                return
            finally:
                self._writing = (0, [])
                self._writing_cmds = 0
            self._next_seq = seq
            self._last_ts = ts
            self.batches += 1
            await self._durable.put(batch)
            if self.failure is not None:
                return

    async def _apply_loop(self) -> None:
        while True:
            batch = await self._durable.get()
            if batch is None:
                return
            self._in_flight -= 1
            if self.failure is not None:
                self._fail(self.failure, batch)
                continue
            cmds = [cmd for cmd, _ in batch]
            try:
                results = self.host.apply(cmds)
            except BaseException as exc:
                self._fail(exc, batch)
                continue
            self._unrecorded.extend(results)
            self.applied_seq = cmds[-1].seq
            for (cmd, fut), events in zip(batch, results, strict=True):
                if fut is not None and not fut.done():
                    fut.set_result((cmd.seq, events))
            try:
                for hook in self.after_batch:
                    hook(cmds, results)
            except BaseException as exc:  # e.g. a snapshot from an engine host that died
                self._fail(exc, [])
            if self._paused and not self._in_flight:
                self._idle.set()

    def _fail(
        self, exc: BaseException, journaled: list[tuple[Command, asyncio.Future[Result] | None]]
    ) -> None:
        """Halt: `journaled` commands reached the journal write (their outcome is decided
        by the restart), queued ones never will."""
        if self.failure is None:
            self.failure = exc
        self._stopping = True
        self._idle.set()  # a pause waiting for the engine to be still: it never will
        why = f"exchange halted: {self.failure!r}"
        for _, fut in journaled:
            if fut is not None and not fut.done():
                fut.set_exception(OutcomeUnknown(why))
        queued, self._intake = self._intake, []
        for _, fut in queued:
            if fut is not None and not fut.done():
                fut.set_exception(SequencerStopped(why))
        self._wake.set()

    def follow(self, hook: AfterBatch) -> tuple[int, dict[int, list[Event]]]:
        """Register `hook` (as `after_batch`) for someone who catches up from the journal
        first: returns the seq after which every batch reaches the hook, and the events of
        the commands up to it that the journal may not hold yet (seq -> events). Call on
        the event loop, so nothing is applied in between."""
        self.after_batch.append(hook)
        known: dict[int, list[Event]] = {}
        for first, outs in (self._writing, (self._unrecorded_from, self._unrecorded)):
            known.update((first + i, events) for i, events in enumerate(outs))
        return self.applied_seq, known

    async def pause(self) -> None:
        """Stop taking batches from the intake (new commands queue, none is dropped) and
        return once every batch taken has been applied: the engine is then still, for an
        engine switch. `resume()` goes on with the queue, in order."""
        self._paused = True
        self._idle.clear()
        if self._in_flight and self.failure is None:
            await self._idle.wait()

    def resume(self) -> None:
        self._paused = False
        self._wake.set()

    @property
    def queued(self) -> int:
        """Commands accepted and not yet durable (waiting for, or in, a journal write)."""
        return len(self._intake) + self._writing_cmds

    @property
    def paused(self) -> bool:
        return self._paused

    def stop(self) -> None:
        """Stop taking commands; what was queued is still written, applied and answered.
        Then the last events are journaled, so the journal ends complete."""
        self._stopping = True
        self._wake.set()

    async def flush_outputs(self) -> None:
        """Journal the events not yet recorded (after `run` has returned)."""
        if self._unrecorded and self.failure is None:
            outs, self._unrecorded = self._unrecorded, []
            await asyncio.get_running_loop().run_in_executor(
                self._io, self.journal.append, [], self._unrecorded_from, outs
            )
            self._unrecorded_from += len(outs)

    def close(self) -> None:
        self._io.shutdown(wait=True)
