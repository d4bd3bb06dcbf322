"""The sequencer: durable before applied, group commit, ordering, time, failure."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest

from cambio.journal.segments import Journal
from cambio.model.commands import Command, Deposit, Tick
from cambio.model.config import load_config
from cambio.model.events import Deposited, Event
from cambio.runtime.host import InProcessHost
from cambio.runtime.sequencer import InvalidCommand, OutcomeUnknown, Sequencer, SequencerStopped


def deposit(i: int) -> Deposit:
    return Deposit(account=1 + i % 3, asset="ZUSD", amount=1000 + i, ref=f"d{i}")


async def run_with(seq: Sequencer, body: object) -> None:
    task = asyncio.create_task(seq.run())
    await body  # type: ignore[misc]
    seq.stop()
    await task
    await seq.flush_outputs()
    seq.close()


def test_concurrent_commands_are_group_committed_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    seq = Sequencer(journal, InProcessHost(load_config()), max_batch=64)
    results: list[tuple[int, list[Event]]] = []

    async def body() -> None:
        results.extend(await asyncio.gather(*(seq.submit(deposit(i)) for i in range(500))))

    asyncio.run(run_with(seq, body()))
    assert [s for s, _ in results] == list(range(1, 501))
    for i, (_, events) in enumerate(results):
        (ev,) = events
        assert isinstance(ev, Deposited) and ev.amount == 1000 + i
    assert 500 // 64 <= seq.batches < 500  # batched, never above max_batch
    stored = list(journal.commands())
    assert [c.seq for c in stored] == list(range(1, 501))
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(stored))
    assert [ev for _, ev in journal.outputs()] == [ev for _, ev in results]


def test_one_at_a_time_is_one_command_per_write(tmp_path: Path) -> None:
    seq = Sequencer(Journal(tmp_path), InProcessHost(load_config()))

    async def body() -> None:
        for i in range(20):
            assert (await seq.execute(deposit(i)))[0] == i + 1

    asyncio.run(run_with(seq, body()))
    assert seq.batches == 20


def test_time_never_goes_backwards_even_if_the_clock_does(tmp_path: Path) -> None:
    clock = iter([5_000, 9_000, 7_000, 3_000, 12_000])
    journal = Journal(tmp_path)
    seq = Sequencer(journal, InProcessHost(load_config()), clock=lambda: next(clock))

    async def body() -> None:
        for _ in range(5):
            await seq.execute(Tick())

    asyncio.run(run_with(seq, body()))
    assert [c.ts for c in journal.commands()] == [5_000, 9_000, 9_000, 9_000, 12_000]


class FailingJournal(Journal):
    def append(
        self, commands: list[Command], out_seq: int = 0, outputs: list[list[Event]] | None = None
    ) -> None:
        if commands and commands[-1].seq >= 3:
            raise OSError(28, "No space left on device")
        super().append(commands, out_seq, outputs)


class FailingHost(InProcessHost):
    def apply(self, commands: Sequence[Command]) -> list[list[Event]]:
        if any(c.seq == 3 for c in commands):
            raise RuntimeError("engine bug")
        return super().apply(commands)


@pytest.mark.parametrize("broken", ["journal", "engine"])
def test_a_failure_halts_everything_and_acknowledges_nothing_more(
    tmp_path: Path, broken: str
) -> None:
    config = load_config()
    journal = FailingJournal(tmp_path) if broken == "journal" else Journal(tmp_path)
    host = FailingHost(config) if broken == "engine" else InProcessHost(config)
    seq = Sequencer(journal, host)

    async def body() -> None:
        task = asyncio.create_task(seq.run())
        assert (await seq.execute(deposit(0)))[0] == 1
        assert (await seq.execute(deposit(1)))[0] == 2
        futures = [seq.submit(deposit(i)) for i in range(2, 6)]
        for fut in futures:  # one batch, which reached the journal write: the restart decides
            with pytest.raises(OutcomeUnknown):
                await fut
        with pytest.raises((OSError, RuntimeError)):
            await task
        with pytest.raises(SequencerStopped):
            seq.submit(deposit(9))
        seq.close()

    asyncio.run(body())
    assert seq.applied_seq == 2


def test_stop_answers_everything_already_queued(tmp_path: Path) -> None:
    seq = Sequencer(Journal(tmp_path), InProcessHost(load_config()))

    async def body() -> None:
        task = asyncio.create_task(seq.run())
        futures = [seq.submit(deposit(i)) for i in range(50)]
        seq.stop()
        with pytest.raises(SequencerStopped):
            seq.submit(deposit(99))
        await task
        assert [(await f)[0] for f in futures] == list(range(1, 51))

    asyncio.run(body())


def test_a_command_that_cannot_be_journaled_is_refused_alone(tmp_path: Path) -> None:
    seq = Sequencer(Journal(tmp_path), InProcessHost(load_config()))

    async def body() -> None:
        good = seq.submit(deposit(1))
        with pytest.raises(InvalidCommand):
            seq.submit(Deposit(account=1, asset="ZUSD", amount=2**64, ref="huge"))
        assert (await good)[0] == 1
        assert (await seq.execute(deposit(2)))[0] == 2

    asyncio.run(run_with(seq, body()))
    assert seq.failure is None


def test_a_failing_hook_halts_instead_of_silently_stopping_the_engine(tmp_path: Path) -> None:
    seq = Sequencer(Journal(tmp_path), InProcessHost(load_config()))
    calls: list[int] = []

    def hook(cmds: list[Command], results: list[list[Event]]) -> None:
        calls.append(cmds[-1].seq)
        if len(calls) == 2:
            raise RuntimeError("engine host died")

    seq.after_batch.append(hook)

    async def body() -> None:
        task = asyncio.create_task(seq.run())
        assert (await seq.execute(deposit(0)))[0] == 1
        assert (await seq.execute(deposit(1)))[0] == 2  # answered, then the hook failed
        with pytest.raises(SequencerStopped):
            await seq.execute(deposit(2))
        with pytest.raises(RuntimeError, match="engine host died"):
            await task
        seq.close()

    asyncio.run(body())


def test_a_pause_stills_the_engine_and_queues_what_arrives_meanwhile(tmp_path: Path) -> None:
    host = InProcessHost(load_config())
    seq = Sequencer(Journal(tmp_path), host, max_batch=8)

    async def body() -> None:
        first = [seq.submit(deposit(i)) for i in range(40)]
        await first[0]  # the writer is busy with the next batches now
        await seq.pause()  # returns only once everything journaled is applied
        applied = seq.applied_seq
        assert applied == seq.journal.last_seq == host.engine.seq > 0
        later = [seq.submit(deposit(i)) for i in range(40, 60)]
        await asyncio.sleep(0.05)
        assert seq.applied_seq == applied and not any(f.done() for f in later)
        seq.resume()
        done = await asyncio.gather(*first, *later)
        assert [s for s, _ in done] == list(range(1, 61))  # nothing dropped, in order

    asyncio.run(run_with(seq, body()))


def test_follow_hands_over_exactly_where_the_journal_may_end(tmp_path: Path) -> None:
    seq = Sequencer(Journal(tmp_path), InProcessHost(load_config()), max_batch=4)
    seen: list[int] = []

    async def body() -> None:
        await asyncio.gather(*(seq.submit(deposit(i)) for i in range(10)))
        after, known = seq.follow(lambda cmds, _: seen.extend(c.seq for c in cmds))
        # the events the journal does not hold yet are handed over, up to `after`
        recorded = {s for s, _ in Journal(tmp_path, readonly=True).outputs()}
        assert set(known) | recorded >= set(range(1, after + 1))
        await asyncio.gather(*(seq.submit(deposit(i)) for i in range(10, 20)))
        assert seen == list(range(after + 1, 21))

    asyncio.run(run_with(seq, body()))
