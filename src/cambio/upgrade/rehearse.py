"""Rehearsal: run a candidate engine over production's journal and compare every event.

The journal is opened read-only (the live exchange is not disturbed; what was durable
when the rehearsal started is what it reads). The candidate starts from genesis or from
the newest snapshot and replays command by command in production's batches. Each
command's events are compared with those production recorded:

* equal: go on;
* different but accounted for by a change the candidate declares (cambio.upgrade.changes):
  counted per change, go on;
* anything else: stop. The first unexpected divergence is reported with its command, the
  expected and the actual events, and the state around it: the book and the balances
  involved, before the command and after it, in production and in the candidate. That
  context comes from a second replay up to the command, paid only when something is wrong.

A clean run also checks the candidate's state: the invariants (cambio.ops.invariants, read
from the candidate's own snapshot document, so this build judges it); when it started
from genesis, its state hash at production's newest snapshot; and that restoring that
snapshot in the candidate gives the snapshot's own state (what a shadow starts from).
Replay speed and start time are measured; the cutover ETA derived from them says what it
rests on (cambio.upgrade.eta).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cambio.engine.snapshot import Snapshot, snapshot_state_hash
from cambio.journal.segments import Journal
from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import Command
from cambio.model.config import MarketConfig
from cambio.model.decimals import format_units
from cambio.model.events import ACCOUNT_FIELDS, Event
from cambio.ops.invariants import Flows, check
from cambio.runtime.datadir import DataDir
from cambio.runtime.host import EngineHost, InProcessHost
from cambio.runtime.replay import Mismatch, Replayer
from cambio.upgrade.candidate import Candidate, resolve
from cambio.upgrade.changes import Declared, Judge, load
from cambio.upgrade.eta import Eta, estimate

BOOK_LEVELS = 5  # levels a side shown around a divergence


@dataclass
class Context:
    """The book and balances a divergent command touched, as data for the report."""

    pair: str | None
    accounts: list[int]
    before: dict[str, Any]  # candidate == production up to here
    after_production: dict[str, Any]
    after_candidate: dict[str, Any]


@dataclass
class Divergence:
    seq: int
    command: Command
    recorded: list[Event]
    replayed: list[Event]
    context: Context | None = None


@dataclass
class Rehearsal:
    candidate: Candidate
    start_seq: int  # 0: genesis, else the snapshot it started from
    journal_last_seq: int
    commands: int = 0
    seconds: float = 0.0
    declared: dict[str, Declared] = field(default_factory=dict)
    divergence: Divergence | None = None
    problems: list[str] = field(default_factory=list)  # invariants, state hashes
    notes: list[str] = field(default_factory=list)
    state_hash: str = ""
    eta: Eta | None = None

    @property
    def ok(self) -> bool:
        return self.divergence is None and not self.problems

    @property
    def rate(self) -> float:
        return self.commands / self.seconds if self.seconds else 0.0


def rehearse(
    data: DataDir,
    candidate: Candidate,
    from_snapshot: bool = False,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> Rehearsal:
    """Rehearse `candidate` on the journal in `data` (see the module docstring)."""
    config = data.config()
    changes = load(candidate.declared_changes())
    journal = Journal(data.journal, readonly=True)
    # production's newest intact snapshot this read of the journal covers (beside a live
    # server a newer one may appear meanwhile); the time to read it counts in the ETA
    read_started = time.perf_counter()
    newest_seq, newest = newest_snapshot(data, journal.outputs_through)
    read_s = time.perf_counter() - read_started
    start_seq, start = (newest_seq, newest) if from_snapshot else (0, None)
    result = Rehearsal(candidate, start_seq, journal.last_seq)
    if from_snapshot and newest is None:
        result.notes.append("production has no snapshot yet: the candidate started from genesis")
    judge = Judge(changes)
    result.declared = judge.declared
    if journal.outputs_through < journal.last_seq:
        result.notes.append(
            f"production has not recorded the events of seq {journal.outputs_through + 1}.."
            f"{journal.last_seq} yet: those commands are replayed but cannot be compared"
        )
    if total is not None:
        total(journal.last_seq - start_seq)

    flows = _flows_before(journal, start_seq)

    def count(cmds: list[Command], results: Sequence[Sequence[Event]]) -> None:
        for events in results:
            flows.add(events)

    host = candidate.host(data.markets, start)
    try:
        replayer = Replayer(journal, host, start_seq, on_applied=count, on_mismatch=judge)
        # from genesis, stop by production's newest snapshot to compare state hashes
        if newest is not None and not from_snapshot:
            seq, expected = newest_seq, snapshot_state_hash(newest)
            replayer.run(until=seq, progress=progress)
            declared = judge.total
            if replayer.stopped is None and host.state_hash() != expected:
                differs = (
                    f"state hash at seq {seq} is {host.state_hash()}, production's snapshot "
                    f"says {expected}"
                )
                if declared:  # the declared changes moved state: expected, but shown
                    result.notes.append(f"{differs} (after {declared} declared change(s))")
                else:
                    result.problems.append(differs)
        replayer.run(progress=progress)
        result.commands, result.seconds = replayer.commands, replayer.seconds
        if replayer.stopped is not None:
            result.divergence = _divergence(journal, replayer.stopped)
        else:
            result.state_hash = host.state_hash()
            _check_invariants(host, flows, config, result)
            round_trip = _round_trip(host)
            start_s, problem = _start(candidate, data, newest)
            if problem:
                result.problems.append(problem)
            result.eta = estimate(journal, replayer.rate, newest_seq, read_s + start_s, round_trip)
    finally:
        host.close()
    if result.divergence is not None:
        result.divergence.context = context_of(
            data,
            lambda snap: candidate.host(data.markets, snap),
            start_seq,
            start,
            result.divergence,
        )
    return result


# ---------------------------------------------------------------------- helpers
def newest_snapshot(data: DataDir, max_seq: int) -> tuple[int, bytes | None]:
    """(seq, body) of production's newest intact snapshot at or below `max_seq`;
    (0, None) when there is none."""
    seq, body, _ = SnapshotStore(data.snapshots).load(lambda b: b, max_seq)
    return seq, body


def _round_trip(host: EngineHost) -> float:
    """The best of a few round trips to the candidate (a chain request)."""
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        host.chain()
        best = min(best, time.perf_counter() - started)
    return best


def _start(candidate: Candidate, data: DataDir, body: bytes | None) -> tuple[float, str]:
    """How long a shadow of the candidate takes to start from snapshot `body`, doing what
    the server does (cambio.upgrade.manager): find the build, restore the snapshot in the
    candidate while this build hashes its state document, compare, open the journal; a
    fresh process from genesis when there is no snapshot. Also what is wrong with the
    restored state, if anything (a restore bug shows here even from genesis)."""
    started = time.perf_counter()
    resolve(candidate.path)
    problem = ""
    with ThreadPoolExecutor(1) as pool:
        expected = pool.submit(snapshot_state_hash, body) if body is not None else None
        host = candidate.host(data.markets, body)
        try:
            if expected is not None and (got := host.state_hash()) != expected.result():
                problem = (
                    f"restoring production's newest snapshot gives a state hashing to {got}, "
                    f"the snapshot's own state hashes to {expected.result()}: a shadow or "
                    "cutover starting from it would be refused"
                )
            Journal(data.journal, readonly=True)
            return time.perf_counter() - started, problem
        finally:
            host.close()


def _flows_before(journal: Journal, start_seq: int) -> Flows:
    """Deposits and withdrawals recorded up to `start_seq`: conservation is judged from
    genesis even when the candidate starts from a snapshot."""
    flows = Flows()
    if start_seq:
        for seq, events in journal.outputs():
            if seq > start_seq:
                break
            flows.add(events)
    return flows


def _check_invariants(
    host: EngineHost, flows: Flows, config: MarketConfig, result: Rehearsal
) -> None:
    try:
        doc = msgspec.msgpack.decode(host.snapshot(), type=Snapshot).state
    except msgspec.DecodeError as exc:
        result.problems.append(f"the candidate's snapshot cannot be read by this build: {exc}")
        return
    _, broken = check(doc, flows, [a.id for a in config.assets])
    result.problems += [f"invariant: {p}" for p in broken]


def _divergence(journal: Journal, m: Mismatch) -> Divergence:
    command = next(journal.commands(m.seq))
    return Divergence(m.seq, command, m.recorded, m.replayed)


def _involved(d: Divergence, config: MarketConfig) -> tuple[str | None, list[int]]:
    """The pair and accounts a divergence is about: from the command and both sides'
    events."""
    pair = getattr(d.command, "pair", None)
    accounts = {getattr(d.command, "account", None)}
    for ev in [*d.recorded, *d.replayed]:
        if pair is None and isinstance(getattr(ev, "pair", None), int):
            pair = config.pairs[ev.pair].id  # type: ignore[attr-defined]
        accounts.update(getattr(ev, f, None) for f in ACCOUNT_FIELDS)
    return (str(pair) if pair is not None else None), sorted(
        a for a in accounts if isinstance(a, int)
    )


def _state(
    host: EngineHost, config: MarketConfig, pair: str | None, accounts: list[int]
) -> dict[str, Any]:
    """The book's best levels and the accounts' balances, in decimal text."""
    balances = {}
    for account in accounts:
        held = host.query("balances", account)
        balances[account] = {
            asset: [format_units(v, config.asset(asset).units) for v in values]
            for asset, values in held.items()
        }
    out: dict[str, Any] = {"balances": balances}
    if pair is not None:
        try:
            spec = config.pair(pair)
            book = host.query("depth", pair, BOOK_LEVELS)
        except Exception:  # a pair the command named but the markets do not have
            return out
        out["book"] = {
            side: [
                [format_units(price, spec.pair_decimals), format_units(qty, spec.lot_decimals)]
                for price, qty in levels
            ]
            for side, levels in book.items()
        }
    return out


def context_of(
    data: DataDir,
    make_host: Callable[[bytes | None], EngineHost],
    start_seq: int,
    start: bytes | None,
    d: Divergence,
) -> Context:
    """Replay again to just before the divergent command, in the candidate (`make_host`,
    from `start` at `start_seq`) and in this build (production's), and look at the state
    before and after it."""
    config = data.config()
    journal = Journal(data.journal, readonly=True)
    pair, accounts = _involved(d, config)
    host = make_host(start)
    production = InProcessHost(config, start)
    try:
        for h in (host, production):
            Replayer(journal, h, start_seq).run(until=d.seq - 1)
        before = _state(host, config, pair, accounts)
        host.apply([d.command])
        production.apply([d.command])
        return Context(
            pair,
            accounts,
            before,
            _state(production, config, pair, accounts),
            _state(host, config, pair, accounts),
        )
    except Exception as exc:  # context is a courtesy; the divergence itself stands
        return Context(pair, accounts, {"error": str(exc)}, {}, {})
    finally:
        host.close()
