"""Projection is a function of the event stream alone: not of how it is cut into batches,
of batches applied twice or overlapping, of restarts, resets or failed writes."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

import pytest
from _projection_stream import CONFIG, build
from _store_helpers import Databases, Dump, Item, chunks, dump, project, random_sizes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cambio.model.events import OrderClosed
from cambio.store import ProjectionError, ReadModels

STREAM = build(1500, seed=7, days=35)
SMALL = build(300, seed=3, days=10)
_reference: dict[tuple[str, int], Dump] = {}


def reference(dbs: Databases, items: Sequence[Item]) -> Dump:
    """The tables after projecting `items` in one batch (once per backend and stream)."""
    key = (dbs.backend, len(items))
    if key not in _reference:
        rm = ReadModels(dbs.url(), CONFIG)
        rm.apply(items)
        _reference[key] = dump(rm)
        rm.close()
    return _reference[key]


@pytest.fixture
def rm(dbs: Databases) -> Iterator[ReadModels]:
    models = ReadModels(dbs.url(), CONFIG)
    yield models
    models.close()


@pytest.mark.parametrize("sizes", [(1,), (2, 5, 3), (64,), (700, 1, 1)])
def test_any_split_gives_the_same_tables(
    dbs: Databases, rm: ReadModels, sizes: tuple[int, ...]
) -> None:
    assert project(rm, STREAM.items, sizes) == len(STREAM.items)
    assert dump(rm) == reference(dbs, STREAM.items)


def test_applying_every_batch_twice_changes_nothing(dbs: Databases, rm: ReadModels) -> None:
    for batch in chunks(STREAM.items, random_sizes(1, 80)):
        seq = rm.apply(batch)
        assert rm.apply(batch) == seq == batch[-1][0]
    assert dump(rm) == reference(dbs, STREAM.items)


def test_overlapping_ranges_apply_only_what_is_new(dbs: Databases, rm: ReadModels) -> None:
    r = random.Random(5)
    items = STREAM.items
    start = 0
    while start < len(items):
        end = min(len(items), start + r.randint(1, 120))
        rm.apply(items[max(0, start - r.randint(0, 60)) : end])  # re-sends up to 60 old ones
        assert rm.last_seq() == end
        start = end
    assert rm.apply(items) == len(items)  # the whole stream again: nothing new
    assert dump(rm) == reference(dbs, STREAM.items)


def test_reset_and_rebuild_gives_the_same_tables(dbs: Databases, rm: ReadModels) -> None:
    project(rm, STREAM.items, (37,))
    before = dump(rm)
    rm.reset()
    assert rm.last_seq() == 0
    assert all(not rows for name, rows in dump(rm).items() if name != "projection_state")
    project(rm, STREAM.items, (500,))
    assert dump(rm) == before == reference(dbs, STREAM.items)


def test_a_restart_carries_on_from_the_tables(dbs: Databases) -> None:
    """A new ReadModels on the same database starts with empty caches: open orders,
    running balances and last prices must come back from the tables."""
    url = dbs.url()
    items = STREAM.items
    cuts = [0, 90, 91, 400, 777, 1200, len(items)]
    for a, b in itertools.pairwise(cuts):
        models = ReadModels(url, CONFIG)
        assert models.last_seq() == a
        project(models, items[a:b], (50,))
        models.close()
    models = ReadModels(url, CONFIG)
    assert dump(models) == reference(dbs, items)
    models.close()


def test_a_gap_is_refused_and_changes_nothing(rm: ReadModels) -> None:
    items = STREAM.items
    rm.apply(items[:10])
    before = dump(rm)
    with pytest.raises(ProjectionError, match="does not follow"):
        rm.apply(items[11:20])
    with pytest.raises(ProjectionError, match="does not follow"):
        rm.apply([items[10], items[12]])
    assert rm.last_seq() == 10
    assert dump(rm) == before


def test_a_failed_batch_leaves_tables_and_caches_as_they_were(
    dbs: Databases, rm: ReadModels
) -> None:
    items = STREAM.items
    project(rm, items[:600], (100,))
    before = dump(rm)
    seq, ts, _ = items[650]
    bogus = OrderClosed(order_id=10**12, account=1, status="canceled", reason="", filled=0)
    bad = [*items[600:650], (seq, ts, [bogus])]
    with pytest.raises(ProjectionError, match="never accepted"):
        rm.apply(bad)
    assert rm.last_seq() == 600
    assert dump(rm) == before
    project(rm, items[600:], (100,))
    assert dump(rm) == reference(dbs, items)


def test_empty_batches(rm: ReadModels) -> None:
    assert rm.apply([]) == 0
    rm.apply(STREAM.items[:3])
    assert rm.apply([]) == 3
    assert rm.apply([(4, STREAM.items[3][1], [])]) == 4  # a command without events


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(1, 80), min_size=1, max_size=20),
    resend=st.lists(st.integers(0, 30), min_size=1, max_size=10),
    restart_every=st.integers(0, 6),
)
def test_random_splits_resends_and_restarts(
    dbs: Databases, sizes: list[int], resend: list[int], restart_every: int
) -> None:
    expected = reference(dbs, SMALL.items)
    url = dbs.shared()
    rm = ReadModels(url, CONFIG)
    rm.reset()
    items = SMALL.items
    start = 0
    for k, size in enumerate(sizes * (len(items) // sum(sizes) + 1)):
        if start >= len(items):
            break
        back = resend[k % len(resend)]
        rm.apply(items[max(0, start - back) : start + size])
        start += size
        if restart_every and k % restart_every == 0:
            rm.close()
            rm = ReadModels(url, CONFIG)
    assert rm.last_seq() == len(items)
    assert dump(rm) == expected
    rm.close()
