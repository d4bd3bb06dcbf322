"""Engine hosts: the in-process and the subprocess host are the same engine."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cambio.journal.segments import Journal
from cambio.model.commands import BUY, SELL, AddOrder, CancelOrder, Command, Deposit, Tick
from cambio.model.config import load_config
from cambio.runtime.host import InProcessHost
from cambio.runtime.host_protocol import ProtocolError
from cambio.runtime.replay import Replayer
from cambio.runtime.subprocess_host import SubprocessHost


def order_flow(n: int, seed: int) -> list[Command]:
    rng = random.Random(seed)
    cmds: list[Command] = [
        Deposit(account=a, asset=asset, amount=10**18, ref=f"{a}{asset}")
        for a in range(1, 5)
        for asset in ("ZUSD", "XXBT")
    ]
    for _ in range(n):
        r = rng.random()
        account = rng.randint(1, 4)
        if r < 0.1:
            cmds.append(CancelOrder(account=account, order_id=rng.randint(1, 200)))
        elif r < 0.15:
            cmds.append(Tick())
        else:
            cmds.append(
                AddOrder(
                    account=account,
                    pair="XXBTZUSD",
                    side=rng.choice((BUY, SELL)),
                    qty=rng.randint(1, 40) * 10_000,
                    price=5_000_000 + rng.randint(-30, 30) * 10,
                    ordertype=rng.choice(("limit", "limit", "market")),
                )
            )
    for i, cmd in enumerate(cmds, 1):
        cmd.seq, cmd.ts = i, 1_700_000_000_000_000_000 + i * 10_000_000
    return cmds


def test_journal_replayed_in_process_and_in_subprocess_gives_identical_chains(
    tmp_path: Path,
) -> None:
    config = load_config()
    live = InProcessHost(config)
    journal = Journal(tmp_path)
    cmds = order_flow(3000, seed=5)
    out_seq = 1
    for k in range(0, len(cmds), 97):
        chunk = cmds[k : k + 97]
        journal.append(chunk)
        results = live.apply(chunk)
        journal.append([], out_seq, results)
        out_seq += len(chunk)
    inproc = InProcessHost(config)
    sub = SubprocessHost()
    try:
        replays = [Replayer(journal, host) for host in (inproc, sub)]
        for r in replays:
            r.run()
            assert r.mismatches == [] and r.commands == len(cmds)
        assert inproc.chain() == sub.chain() == live.chain()
        assert inproc.state_hash() == sub.state_hash() == live.state_hash()
        assert sub.snapshot() == live.snapshot()
    finally:
        sub.close()


def test_subprocess_host_restores_a_snapshot_and_carries_on_identically() -> None:
    config = load_config()
    cmds = order_flow(800, seed=9)
    whole = InProcessHost(config)
    expected = whole.apply(cmds)[400:]
    half = InProcessHost(config)
    half.apply(cmds[:400])
    sub = SubprocessHost(snapshot=half.snapshot())
    try:
        assert sub.apply(cmds[400:]) == expected
        assert sub.state_hash() == whole.state_hash()
        assert sub.chain() == whole.chain()
    finally:
        sub.close()


def test_subprocess_host_reports_engine_errors_and_death() -> None:
    sub = SubprocessHost()
    with pytest.raises(ProtocolError, match="refused restore"):
        sub._call("restore", b"not a snapshot")
    sub.proc.kill()
    sub.proc.wait()
    with pytest.raises(ProtocolError):
        sub.state_hash()
    sub.close()
