"""Replaying the journal through an engine host, comparing with what was recorded.

Used by start-up recovery (the tail after the newest snapshot), by `cambio verify` (all of
it, from genesis) and by `cambio replay` (throughput). Each journal record is one batch
for the host. Recorded events are compared with the replayed ones byte for byte on their
msgpack encoding, a whole record at a time; only a record that differs is decoded to
find the first differing command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import msgspec

from cambio.journal.segments import Journal, Record
from cambio.model.commands import Command
from cambio.model.events import Event
from cambio.runtime.host import EngineHost

_encoder = msgspec.msgpack.Encoder()

OnApplied = Callable[[list[Command], list[list[Event]]], None]


@dataclass
class Mismatch:
    """A command whose replayed events differ from the events the journal recorded."""

    seq: int
    recorded: list[Event]
    replayed: list[Event]

    def describe(self) -> str:
        return (
            f"seq {self.seq}: journal recorded {_encoder.encode(self.recorded).hex()[:200]}, "
            f"engine replayed {_encoder.encode(self.replayed).hex()[:200]}"
        )


@dataclass
class Replayer:
    """Feeds journal records to `host` from `after_seq` + 1, in steps (`run(until)`)."""

    journal: Journal
    host: EngineHost
    after_seq: int = 0
    on_applied: OnApplied | None = None
    # judges each mismatch: True to go on, False to stop there (`stopped`); default: go on
    on_mismatch: Callable[[Mismatch], bool] | None = None
    stopped: Mismatch | None = None
    applied_seq: int = 0
    commands: int = 0
    seconds: float = 0.0
    mismatches: list[Mismatch] = field(default_factory=list)
    _pending: dict[int, list[Event]] = field(default_factory=dict)
    _records: Iterator[Record] | None = None
    _left: list[Command] = field(default_factory=list)  # commands of a record cut by `until`

    def __post_init__(self) -> None:
        self.applied_seq = self.after_seq
        self._records = self.journal.records(self.after_seq + 1)

    @property
    def pending(self) -> dict[int, list[Event]]:
        """Replayed events not compared yet (the journal had not recorded them), by seq."""
        return dict(self._pending)

    @property
    def unrecorded(self) -> list[list[Event]]:
        """Replayed events that the journal has not recorded yet, in seq order."""
        return [self._pending[s] for s in sorted(self._pending)]

    def run(self, until: int | None = None, progress: Callable[[int], None] | None = None) -> None:
        """Apply commands up to seq `until` (default: the journal's end), or until
        `on_mismatch` says stop."""
        assert self._records is not None
        if self.stopped is not None:
            return
        started = time.perf_counter()
        try:
            if self._left:
                self._left = self._apply(self._left, until)
                if self._left:
                    return
            for rec in self._records:
                if rec.out_n:
                    self._compare(rec)
                    if self.stopped is not None:
                        return
                if rec.n:
                    cmds: list[Command] = [c for c in rec.commands() if c.seq > self.applied_seq]
                    before = self.commands
                    self._left = self._apply(cmds, until)
                    if progress is not None:
                        progress(self.commands - before)
                    if self._left:
                        return
        finally:
            self.seconds += time.perf_counter() - started

    def _apply(self, cmds: list[Command], until: int | None) -> list[Command]:
        left: list[Command] = []
        if until is not None and cmds and cmds[-1].seq > until:
            k = sum(1 for c in cmds if c.seq <= until)
            cmds, left = cmds[:k], cmds[k:]
        if cmds:
            results = self.host.apply(cmds)
            for cmd, events in zip(cmds, results, strict=True):
                self._pending[cmd.seq] = events
            self.applied_seq = cmds[-1].seq
            self.commands += len(cmds)
            if self.on_applied is not None:
                self.on_applied(cmds, results)
        return left

    def _compare(self, rec: Record) -> None:
        seqs = range(rec.out_seq, rec.out_seq + rec.out_n)
        pending = self._pending
        if all(s in pending for s in seqs):
            replayed = [pending.pop(s) for s in seqs]
            if _encoder.encode(replayed) == rec.out_bytes:
                return
        else:
            replayed = [pending.pop(s, []) for s in seqs]
        for s, recorded, got in zip(seqs, rec.outputs(), replayed, strict=True):
            if s > self.after_seq and _encoder.encode(recorded) != _encoder.encode(got):
                m = Mismatch(s, list(recorded), got)
                self.mismatches.append(m)
                if self.on_mismatch is not None and not self.on_mismatch(m):
                    self.stopped = m
                    return

    @property
    def rate(self) -> float:
        """Commands replayed per second so far."""
        return self.commands / self.seconds if self.seconds else 0.0
