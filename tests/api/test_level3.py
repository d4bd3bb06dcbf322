"""The level3 diff: whatever the book did between two batches, a client that follows
Kraken's rules (delete, modify in place, add at the back, truncate to depth) ends with
exactly the server's window, queue order included."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cambio.api.kraken.level3 import changes


class Side:
    """A client's copy of one side of the level3 book: price -> [[order id, qty], ...]."""

    def __init__(self, bids: bool) -> None:
        self.bids = bids
        self.levels: dict[Any, list[list[Any]]] = {}

    def apply(self, event: str, price: Any, order_id: Any, qty: Any) -> None:
        level = self.levels.setdefault(price, [])
        if event == "add":
            assert all(o[0] != order_id for o in level), f"{order_id} added twice"
            level.append([order_id, qty])
        elif event == "modify":
            (found,) = [o for o in level if o[0] == order_id]
            found[1] = qty
        else:
            assert event == "delete", event
            assert any(o[0] == order_id for o in level), f"{order_id} deleted but not held"
            level[:] = [o for o in level if o[0] != order_id]
        if not level:
            del self.levels[price]

    def truncate(self, depth: int, key: Any = float) -> None:
        keep = sorted(self.levels, key=key, reverse=self.bids)[:depth]
        self.levels = {price: self.levels[price] for price in keep}

    def best(self, count: int, key: Any = float) -> list[tuple[Any, list[list[Any]]]]:
        prices = sorted(self.levels, key=key, reverse=self.bids)[:count]
        return [(price, self.levels[price]) for price in prices]


def _sides(draw: Any, ids: list[int], bids: bool) -> list[list[Any]]:
    """A random side: distinct prices best first, each with a few distinct orders."""
    prices = draw(st.lists(st.integers(1, 12), unique=True, max_size=8))
    pool = list(ids)
    levels: list[list[Any]] = []
    for price in sorted(prices, reverse=bids):
        count = draw(st.integers(1, 4))
        orders = []
        for _ in range(min(count, len(pool))):
            order_id = pool.pop(draw(st.integers(0, len(pool) - 1)))
            orders.append([order_id, draw(st.integers(1, 3)), 0])
        if orders:
            levels.append([price, orders])
    return levels


@st.composite
def transitions(draw: Any) -> tuple[bool, int, list[list[Any]], list[list[Any]]]:
    """Two arbitrary states of one side drawing on a small pool of order ids, so orders
    stay, move within a level, change quantity or price, leave and arrive."""
    bids = draw(st.booleans())
    ids = list(range(1, 16))
    return (
        bids,
        draw(st.sampled_from([1, 2, 3, 10])),
        _sides(draw, ids, bids),
        _sides(draw, ids, bids),
    )


@settings(max_examples=400, deadline=None)
@given(transitions())
def test_a_client_applying_the_changes_holds_the_new_window(case: Any) -> None:
    bids, depth, old, new = case
    client = Side(bids)
    for price, orders in old[:depth]:
        for order_id, qty, _ in orders:
            client.apply("add", price, order_id, qty)
    for event, price, (order_id, qty, _) in changes(old, new, depth, bids):
        client.apply(event, price, order_id, qty)
    client.truncate(depth, key=int)
    want = [(price, [[o[0], o[1]] for o in orders]) for price, orders in new[:depth]]
    assert client.best(depth, key=int) == want


def test_unchanged_book_and_untouched_levels_send_nothing() -> None:
    book = [[100, [[1, 5, 0], [2, 5, 0]]], [99, [[3, 1, 0]]]]
    assert changes(book, book, 10, bids=True) == []
    # a new best level pushes 99 out of a depth-2 window: the client truncates it itself
    deeper = [[101, [[4, 1, 0]]], *book]
    assert changes(book, deeper, 2, bids=True) == [("add", 101, [4, 1, 0])]


def test_a_refreshed_iceberg_slice_goes_to_the_back_of_its_level() -> None:
    before = [[100, [[1, 5, 0], [2, 5, 0], [3, 5, 0]]]]
    after = [[100, [[2, 5, 0], [3, 5, 0], [1, 5, 7]]]]
    assert changes(before, after, 10, bids=False) == [
        ("delete", 100, [1, 5, 0]),
        ("add", 100, [1, 5, 7]),
    ]
