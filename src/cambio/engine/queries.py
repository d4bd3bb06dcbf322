"""Read-only questions the API asks of the live engine, answered as plain data.

Balances with their holds, the modes, the visible book: things the event stream does not
spell out (holds) or that are cheaper to read than to rebuild. Every answer is built from
ints, strings and lists, so an engine host in another process can send it as msgpack.
Nothing here changes the engine.
"""

from __future__ import annotations

from typing import Any

from cambio.engine.exchange import Exchange
from cambio.model.commands import BUY, SELL

QUERIES = (
    "balances",
    "status",
    "depth",
    "touch",
    "orders",
    "volume",
    "promotions",
    "withdrawals",
    "known_refs",
    "totals",
)


def balances(ex: Exchange, account: int) -> dict[str, list[int]]:
    """{asset id: [available, held for orders, held for pending withdrawals]}, for the
    assets the account holds (asset units)."""
    a = ex.accounts.get(account)
    if a is None:
        return {}
    withdrawing = [0] * len(ex.config.assets)
    for w in ex.withdrawals.values():
        if w.account == account:
            withdrawing[w.asset] += w.amount + w.fee
    return {
        spec.id: [
            a.avail[spec.index],
            a.held[spec.index] - withdrawing[spec.index],
            withdrawing[spec.index],
        ]
        for spec in ex.config.assets
        if a.avail[spec.index] or a.held[spec.index]
    }


def totals(ex: Exchange) -> dict[str, Any]:
    """Every account's holdings (available + held) per asset, and each asset's supply as
    the engine keeps it (deposits - completed withdrawals): {"supply": {asset id: units},
    "accounts": [[account, {asset id: units}], ...]} (assets an account has nothing in are
    left out). O(accounts x assets): the conservation monitor's one full look at start,
    never a per-batch question."""
    ids = [spec.id for spec in ex.config.assets]
    accounts = []
    for account, a in ex.accounts.items():
        pairs = zip(ids, a.avail, a.held, strict=True)
        held = {asset: v + h for asset, v, h in pairs if v or h}
        if held:
            accounts.append([account, held])
    return {"supply": dict(zip(ids, ex.supply, strict=True)), "accounts": accounts}


def status(ex: Exchange) -> dict[str, Any]:
    """The global mode, each market's effective mode, each asset's funding switches."""
    return {
        "global": ex.global_mode,
        "markets": {m.spec.id: ex.mode_of(m) for m in ex.markets},
        "funding": {
            spec.id: [ex.deposits_on[spec.index], ex.withdrawals_on[spec.index]]
            for spec in ex.config.assets
        },
        "ts": ex.ts,
    }


def depth(ex: Exchange, pair: str, count: int) -> dict[str, list[list[int]]]:
    """The visible book of `pair` (any of its names), best `count` levels a side:
    {"bids": [[price, qty], ...], "asks": [...]}."""
    book = ex.market(pair).book.depth()
    return {"bids": book["bids"][:count], "asks": book["asks"][:count]}


def touch(ex: Exchange, pair: str) -> list[int]:
    """[best bid, best ask] of `pair` (0 for an empty side), in O(1): what a monitor
    checks after every batch."""
    book = ex.market(pair).book
    return [book.best_bid(), book.best_ask()]


def withdrawals(ex: Exchange) -> list[dict[str, Any]]:
    """Every pending withdrawal, in request order: what the funding worker works through.
    `stage` is 0 queued, 1 sent to custody, 2 broadcast (with its `txid`)."""
    return [
        {
            "ref": w.ref,
            "account": w.account,
            "asset": ex.config.assets[w.asset].id,
            "amount": w.amount,
            "fee": w.fee,
            "address": w.address,
            "stage": w.stage,
            "txid": w.txid,
        }
        for w in ex.withdrawals.values()
    ]


def known_refs(ex: Exchange, refs: list[str]) -> list[str]:
    """Those of `refs` the engine has seen as a deposit, withdrawal or transfer ref."""
    return [r for r in refs if r in ex.funding_refs]


def orders(ex: Exchange, pair: str, count: int) -> dict[str, list[list[Any]]]:
    """The visible book of `pair` order by order, best `count` levels a side, each level's
    orders in time priority: {"bids": [[price, [[order id, visible qty, opened ts], ...]],
    ...], "asks": [...]}. An iceberg shows only its current slice."""
    book = ex.market(pair).book
    return {
        key: [
            [price, [[o.order_id, o.shown if o.display else o.qty, o.opened_ts] for o in os]]
            for price, os in book.levels(side, count)
        ]
        for key, side in (("bids", BUY), ("asks", SELL))
    }


def volume(ex: Exchange, account: int) -> int:
    """The account's 30-day traded volume, in units of the fee-volume currency (USD)."""
    a = ex.accounts.get(account)
    return a.volume30 if a is not None else 0


def promotions(ex: Exchange) -> list[dict[str, Any]]:
    """Every fee promotion, by id: rates in ppm, times in ns, pairs by Kraken id."""
    return [
        {
            "promo_id": p.promo_id,
            "state": p.state,
            "maker_ppm": p.maker_ppm,
            "taker_ppm": p.taker_ppm,
            "start_ts": p.start_ts,
            "end_ts": p.end_ts,
            "scope": p.scope,
            "pairs": [ex.config.pairs[i].id for i in p.pairs],
            "accounts": list(p.accounts),
            "reason": p.reason,
        }
        for _, p in sorted(ex.promos.items())
    ]


def answer(ex: Exchange, name: str, args: list[Any]) -> Any:
    """Dispatch a query by name (the host protocol's `query` op)."""
    if name not in QUERIES:
        raise ValueError(f"unknown query {name!r}")
    return globals()[name](ex, *args)
