"""Replay and snapshot properties: the engine is a pure function of its journal.

* restore(snapshot at k) + apply(k..n) gives the same events, the same state hash after
  every command and the same event hash chain as apply(0..n), for random k (and command
  streams whose sequence numbers cross the chain's block boundary);
* the same stream applied twice gives the same events, chain, hash and snapshot bytes;
* snapshot bytes are identical for identical states (an engine round-tripped through
  snapshot/restore at arbitrary points ends with the very same bytes);
* restore refuses anything that is not a snapshot of this configuration with
  SnapshotError, and nothing else;
* events and commands survive a JSON (and MessagePack) round trip through msgspec.

Streams come from test_invariants.streams (small balances, every command type).
"""

from __future__ import annotations

import contextlib
import tomllib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_invariants import CONFIG, Runner, Step, streams

from cambio.engine import Exchange, SnapshotError
from cambio.model.commands import AnyCommand, Command, Deposit
from cambio.model.config import build_config
from cambio.model.events import AnyEvent, Event

CHAIN_BLOCK = 256  # the chain closes a block at every multiple of this sequence number
_seq0 = st.sampled_from([0, 0, CHAIN_BLOCK - 40, CHAIN_BLOCK - 3, CHAIN_BLOCK - 1, 1_000])
_short = streams(min_size=5, max_size=60)


def run(stream: list[Step], seq0: int) -> Runner:
    """Apply a stream to a fresh engine, recording the stamped commands and events."""
    r = Runner(seq0=seq0)
    for dt, raw in stream:
        r.apply(r.stamp(dt, raw))
    return r


def replay(ex: Exchange, commands: list[Command]) -> tuple[list[list[Event]], list[str]]:
    """Apply already stamped commands; return their events and the chain after each."""
    events, chains = [], []
    for c in commands:
        events.append(ex.apply(msgspec.structs.replace(c)))
        chains.append(ex.chain())
    return events, chains


def enc(events: list[list[Event]]) -> bytes:
    return msgspec.msgpack.encode(events)


@given(stream=_short, seq0=_seq0, data=st.data())
def test_restore_at_k_then_replay_equals_full_run(
    stream: list[Step], seq0: int, data: st.DataObject
) -> None:
    commands = run(stream, seq0).applied
    n = len(commands)
    k = data.draw(st.integers(0, n), label="k")

    a = Exchange(CONFIG)
    head_events, _ = replay(a, commands[:k])
    snap, hash_k, chain_k = a.snapshot(), a.state_hash(), a.chain()
    tail_events, tail_chains = replay(a, commands[k:])
    tail_hashes = []  # hashes after each tail command, on a third engine (A moved on)
    c = Exchange.restore(CONFIG, snap)
    for cmd in commands[k:]:
        c.apply(msgspec.structs.replace(cmd))
        tail_hashes.append(c.state_hash())

    b = Exchange.restore(CONFIG, snap)
    assert b.state_hash() == hash_k
    assert b.chain() == chain_k
    assert b.snapshot() == snap, "snapshot(restore(s)) != s"
    for i, cmd in enumerate(commands[k:]):
        ev = b.apply(msgspec.structs.replace(cmd))
        assert enc([ev]) == enc([tail_events[i]]), f"events differ at command {k + i}: {cmd!r}"
        assert b.chain() == tail_chains[i], f"chain differs after command {k + i}"
        assert b.state_hash() == tail_hashes[i], f"state differs after command {k + i}"
    assert b.state_hash() == a.state_hash()
    assert b.chain() == a.chain()
    assert b.snapshot() == a.snapshot()
    assert len(head_events) + len(tail_events) == n


@given(stream=_short, seq0=_seq0)
def test_same_stream_twice_same_everything(stream: list[Step], seq0: int) -> None:
    first = run(stream, seq0)
    second = Exchange(CONFIG)
    events, _ = replay(second, first.applied)
    assert enc(events) == enc(first.events)
    assert second.chain() == first.ex.chain()
    assert second.state_hash() == first.ex.state_hash()
    assert second.snapshot() == first.ex.snapshot()


@given(stream=_short, seq0=_seq0, data=st.data())
def test_round_trips_anywhere_leave_identical_bytes(
    stream: list[Step], seq0: int, data: st.DataObject
) -> None:
    """Identical state, identical bytes: restore/snapshot cycles at arbitrary points (which
    rebuild every index, heap and dict in a new order) change nothing observable."""
    straight = run(stream, seq0)
    cuts = data.draw(st.sets(st.integers(0, len(straight.applied))), label="cuts")
    ex = Exchange(CONFIG)
    for i, cmd in enumerate(straight.applied):
        if i in cuts:
            ex = Exchange.restore(CONFIG, ex.snapshot())
        ev = ex.apply(msgspec.structs.replace(cmd))
        assert enc([ev]) == enc([straight.events[i]]), f"events differ at command {i}: {cmd!r}"
    if len(straight.applied) in cuts:
        ex = Exchange.restore(CONFIG, ex.snapshot())
    assert ex.snapshot() == straight.ex.snapshot()
    assert ex.chain() == straight.ex.chain()


def test_chain_depends_on_the_events() -> None:
    """The chain is not a constant: one different amount gives a different chain."""
    chains = []
    for amount in (10**13, 10**13 + 1):
        ex = Exchange(CONFIG)
        ex.apply(Deposit(account=1, asset="USD", amount=amount, seq=1, ts=1))
        chains.append(ex.chain())
    assert chains[0] != chains[1]


# ---------------------------------------------------------------------- bad snapshots
def _a_snapshot() -> bytes:
    r = Runner()
    r.apply(r.stamp(0, Deposit(account=1, asset="USD", amount=10**15)))
    return r.ex.snapshot()


SNAPSHOT = _a_snapshot()


@given(garbage=st.binary(max_size=200))
def test_restore_rejects_garbage(garbage: bytes) -> None:
    with pytest.raises(SnapshotError):
        Exchange.restore(CONFIG, garbage)


@given(cut=st.integers(0, len(SNAPSHOT) - 1))
def test_restore_rejects_truncated(cut: int) -> None:
    with pytest.raises(SnapshotError):
        Exchange.restore(CONFIG, SNAPSHOT[:cut])


@given(pos=st.integers(0, len(SNAPSHOT) - 1), byte=st.integers(0, 255))
def test_restore_of_corrupted_bytes_fails_only_with_snapshot_error(pos: int, byte: int) -> None:
    """A flipped byte either still decodes to some valid state or is refused with
    SnapshotError: never any other exception."""
    data = bytearray(SNAPSHOT)
    data[pos] = byte
    with contextlib.suppress(SnapshotError):
        Exchange.restore(CONFIG, bytes(data))


def test_restore_rejects_invalid_utf8() -> None:
    """Regression: a string field with invalid UTF-8 escaped as UnicodeDecodeError."""
    data = bytearray(SNAPSHOT)
    data[SNAPSHOT.index(b"online")] = 0x80
    with pytest.raises(SnapshotError):
        Exchange.restore(CONFIG, bytes(data))


def test_restore_rejects_other_version_and_other_config() -> None:
    doc = msgspec.msgpack.decode(SNAPSHOT)
    doc["state"]["version"] = 99
    with pytest.raises(SnapshotError):
        Exchange.restore(CONFIG, msgspec.msgpack.encode(doc))
    other = build_config(
        tomllib.loads(
            '[[asset]]\nid = "AAA"\ndecimals = 2\n[[asset]]\nid = "BBB"\ndecimals = 2\n'
            '[[pair]]\nid = "AAABBB"\nbase = "AAA"\nquote = "BBB"\n'
            "pair_decimals = 1\nlot_decimals = 1\n"
        )
    )
    with pytest.raises(SnapshotError):
        Exchange.restore(other, SNAPSHOT)


# ---------------------------------------------------------------------- wire formats
@given(stream=_short)
def test_events_and_commands_round_trip_through_json_and_msgpack(stream: list[Step]) -> None:
    r = run(stream, 0)
    events = [e for evs in r.events for e in evs]
    for codec in (msgspec.json, msgspec.msgpack):
        back = codec.decode(codec.encode(events), type=list[AnyEvent])
        assert back == events
        assert [type(e) for e in back] == [type(e) for e in events]
        cmds = codec.decode(codec.encode(r.applied), type=list[AnyCommand])
        assert cmds == r.applied
    one = events[0] if events else None
    if one is not None:
        assert msgspec.json.decode(msgspec.json.encode(one), type=AnyEvent) == one
