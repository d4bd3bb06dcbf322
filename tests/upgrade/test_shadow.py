"""The shadow engine on its own: it catches up from the journal, follows pushed batches,
checks the state it was restored to, and reacts to a divergence as its mode says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from test_server import wait_for
from upgrade_fixtures import MUTANTS, Production, candidate_host, make_candidate, write_production

from cambio.engine.snapshot import snapshot_state_hash
from cambio.journal.segments import Journal
from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import Command, Deposit
from cambio.model.events import Deposited, Event
from cambio.runtime.datadir import DataDir
from cambio.runtime.host import InProcessHost
from cambio.upgrade.rehearse import Divergence
from cambio.upgrade.shadow import Shadow


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DataDir, Production]]:
    data = DataDir(tmp_path_factory.mktemp("shadow") / "data")
    yield data, write_production(data)


def done(value: str) -> Future[str]:
    future: Future[str] = Future()
    future.set_result(value)
    return future


def snapshot_of(data: DataDir) -> tuple[int, bytes]:
    return SnapshotStore.read(SnapshotStore(data.snapshots).paths()[0])


def primary_at_end(data: DataDir) -> InProcessHost:
    host = InProcessHost(data.config())
    host.apply(list(Journal(data.journal, readonly=True).commands()))
    return host


def more(primary: InProcessHost, first_seq: int, n: int) -> tuple[list[Command], list[list[Event]]]:
    cmds: list[Command] = [
        Deposit(
            seq=first_seq + i,
            ts=2 * 10**18 + i,
            account=1,
            asset="ZUSD",
            amount=1 + i,
            ref=f"later-{i}",
        )
        for i in range(n)
    ]
    return cmds, primary.apply(cmds)


def test_it_catches_up_from_the_snapshot_then_follows(
    production: tuple[DataDir, Production],
) -> None:
    data, prod = production
    seq, body = snapshot_of(data)
    primary = primary_at_end(data)
    shadow = Shadow(lambda: InProcessHost(data.config(), body), data.journal, seq, prod.last_seq,
                    {}, start_hash=done(snapshot_state_hash(body)))  # fmt: skip
    shadow.start()
    wait_for(lambda: shadow.state == "following", "following")
    assert shadow.applied_seq == prod.last_seq and shadow.lag(prod.last_seq) == 0
    shadow.push(*more(primary, prod.last_seq + 1, 5))
    wait_for(lambda: shadow.applied_seq == prod.last_seq + 5, "the batches")
    host = shadow.detach()
    assert shadow.state == "stopped" and host.chain() == primary.chain()


def test_a_restore_that_loses_state_is_caught_before_anything_else(
    production: tuple[DataDir, Production], tmp_path: Path
) -> None:
    data, prod = production
    seq, body = snapshot_of(data)
    mutant = next(m for m in MUTANTS if m.from_snapshot)
    checkout = make_candidate(tmp_path, mutant)
    shadow = Shadow(lambda: candidate_host(checkout, data.markets, body), data.journal, seq,
                    prod.last_seq, {}, start_hash=done(snapshot_state_hash(body)))  # fmt: skip
    shadow.start()
    wait_for(lambda: shadow.state not in ("starting", "catching_up"), "the start")
    assert shadow.state == "diverged" and "after restoring the snapshot" in str(shadow.error)
    assert shadow.applied_seq == seq  # it replayed nothing: the start was already wrong
    shadow.stop()


@pytest.mark.parametrize("keeps_going", [False, True], ids=["candidate", "previous-primary"])
def test_a_divergence_stops_a_candidate_but_not_a_previous_primary(
    production: tuple[DataDir, Production], keeps_going: bool
) -> None:
    data, prod = production
    primary = primary_at_end(data)
    seen: list[Divergence] = []
    shadow = Shadow(lambda: primary_at_end(data), data.journal, prod.last_seq, prod.last_seq,
                    {}, stop_on_divergence=not keeps_going, on_divergence=seen.append)  # fmt: skip
    shadow.start()
    wait_for(lambda: shadow.state == "following", "following")
    cmds, events = more(primary, prod.last_seq + 1, 3)
    told = [list(e) for e in events]
    told[1] = [Deposited(ledger_id=1, account=1, asset=0, amount=999, ref="not what happened")]
    shadow.push(cmds, told)
    wait_for(lambda: shadow.state == "diverged", "the divergence")
    (d,) = seen
    assert d.seq == prod.last_seq + 2 and d.recorded == told[1] and d.replayed == events[1]
    shadow.push(*more(primary, prod.last_seq + 4, 2))
    if keeps_going:  # the previous primary stays current for the rollback
        wait_for(lambda: shadow.applied_seq == prod.last_seq + 5, "the batches")
        assert shadow.detach().chain() == primary.chain()
    else:
        time.sleep(0.1)
        assert shadow.applied_seq == prod.last_seq + 3
        with pytest.raises(RuntimeError, match="diverged"):
            shadow.detach()
        shadow.stop()
