"""The engine's order primitives: the sharded open-order index and hold arithmetic."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cambio.engine.order import Order, OrderIndex, hold_needed
from cambio.model.commands import BUY, SELL


def _order(order_id: int) -> Order:
    return Order(order_id, 1, 0, BUY, "limit", 100, 1, 1, "GTC", "cancel-newest", 0, False, False,
                 None, None)  # fmt: skip


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 100_000)), max_size=300))
def test_order_index_behaves_like_a_dict(ops: list[tuple[bool, int]]) -> None:
    index = OrderIndex()
    model: dict[int, Order] = {}
    for insert, oid in ops:
        if insert:
            o = _order(oid)
            index[oid] = o
            model[oid] = o
        else:
            assert index.pop(oid) is model.pop(oid, None)
        assert len(index) == len(model)
    assert list(index) == sorted(model)
    for oid in model:
        assert oid in index and index[oid] is model[oid] and index.get(oid) is model[oid]


def test_order_index_drops_emptied_shards() -> None:
    index = OrderIndex()
    for oid in range(1, 40_000):
        index[oid] = _order(oid)
    for oid in range(1, 40_000):
        index.pop(oid)
    assert len(index) == 0 and list(index) == []
    assert index.get(5) is None and 5 not in index


@given(
    side=st.sampled_from([BUY, SELL]),
    fee_in_base=st.booleans(),
    price=st.integers(1, 10**7),
    q1=st.integers(1, 10**6),
    q2=st.integers(1, 10**6),
    fee_ppm=st.integers(0, 10_000),
)
def test_hold_is_superadditive(
    side: int, fee_in_base: bool, price: int, q1: int, q2: int, fee_ppm: int
) -> None:
    """What a partial fill may pay plus what the rest needs never exceeds the whole hold:
    the property that lets the engine release holds fill by fill without ever running
    short."""
    whole = hold_needed(side, fee_in_base, price, q1 + q2, 10, 1000, fee_ppm)
    parts = hold_needed(side, fee_in_base, price, q1, 10, 1000, fee_ppm) + hold_needed(
        side, fee_in_base, price, q2, 10, 1000, fee_ppm
    )
    assert whole >= parts


def test_depth_shows_only_the_visible_slice_of_an_iceberg() -> None:
    from cambio.engine.book import Book

    book = Book()
    iceberg = _order(1)
    iceberg.qty = iceberg.orig_qty = 150
    iceberg.display = iceberg.shown = 10
    plain = _order(2)
    plain.qty = plain.orig_qty = 7
    book.rest(iceberg)
    book.rest(plain)
    assert book.depth() == {"bids": [[100, 17]], "asks": []}
