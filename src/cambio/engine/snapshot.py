"""The canonical state document: what `snapshot()` writes and `restore()` reads.

It names things by their Kraken ids (assets, pairs), not by the engine's internal
indexes, lists everything in a defined order, and holds only state (nothing derivable),
so any engine version that understands version 1 can restore it and two engines in the
same state produce byte-identical documents. ``state_hash`` is SHA-256 over the document
without its ``chain`` fields (the event hash chain is history, not state). Format:
MessagePack of the structs below (field names as map keys); JSON is equally valid.
"""

from __future__ import annotations

import hashlib
from heapq import heappush
from typing import cast

import msgspec

from cambio.engine.accounts import Account
from cambio.engine.exchange import (
    DAY_NS,
    TIMER_DMS,
    TIMER_EXPIRY,
    TIMER_PROMO,
    TIMER_STAGE,
    Exchange,
    Withdrawal,
)
from cambio.engine.fees import Promotion
from cambio.engine.order import OPEN, PENDING, Order
from cambio.model.commands import BUY, GTD, SELL
from cambio.model.config import MarketConfig
from cambio.model.events import AnyEvent, Event

SNAPSHOT_VERSION = 1


class BalanceDoc(msgspec.Struct, array_like=True):
    asset: str
    available: int
    held: int


class AccountDoc(msgspec.Struct):
    account: int
    balances: list[BalanceDoc]  # assets in configuration order, zero balances left out
    volume_days: list[tuple[int, int]]  # (day number, USD units traded), ascending
    dead_man_switch_ts: int


class OrderDoc(msgspec.Struct):
    order_id: int
    account: int
    pair: str
    side: str  # "buy" / "sell"
    ordertype: str
    status: str  # open / pending
    price: int
    qty: int
    filled: int
    orig_qty: int
    display: int
    shown: int
    hold: int
    fee_in_base: bool
    post_only: bool
    tif: str
    expire_ts: int
    stp: str
    userref: int | None
    cl_ord_id: str | None
    opened_ts: int
    trigger: int
    trigger_dir: int
    limit: int
    trail: int
    trail_pct: bool
    limit_offset: int
    limit_offset_pct: bool
    extreme: int
    amends: int


class MarketDoc(msgspec.Struct):
    pair: str
    mode: str
    last_price: int
    bids: list[list[int]]  # per level, best first: [price, order ids in time priority...]
    asks: list[list[int]]


class FundingDoc(msgspec.Struct, array_like=True):
    asset: str
    deposits: bool
    withdrawals: bool


class WithdrawalDoc(msgspec.Struct, omit_defaults=True):
    ref: str
    account: int
    asset: str
    amount: int
    fee: int
    address: str = ""
    stage: int = 0
    txid: str = ""


class PromotionDoc(msgspec.Struct):
    promo_id: str
    maker_ppm: int
    taker_ppm: int
    start_ts: int
    end_ts: int
    scope: str
    pairs: list[str]
    accounts: list[int]
    reason: str
    state: str


class StateDoc(msgspec.Struct):
    version: int
    seq: int
    ts: int
    day: int
    global_mode: str
    next_order_id: int
    next_trade_id: int
    next_ledger_id: int
    next_amend_id: int
    funding: list[FundingDoc]
    markets: list[MarketDoc]
    accounts: list[AccountDoc]  # ascending account id
    orders: list[OrderDoc]  # open and pending, ascending id
    withdrawals: list[WithdrawalDoc]  # pending, ascending ref
    funding_refs: list[str]  # sorted
    promotions: list[PromotionDoc]  # ascending id
    stages: list[tuple[int, str]] = []  # a staged reopening's next steps: (ts, global mode)
    stage_reason: str = ""


class Snapshot(msgspec.Struct):
    state: StateDoc
    chain_block: bytes  # hash chain: value of the last closed block
    chain_pending: list[tuple[int, list[AnyEvent]]]  # (seq, events) since that block


_encoder = msgspec.msgpack.Encoder(order="deterministic")


def state_doc(ex: Exchange) -> StateDoc:
    cfg = ex.config
    aid = [a.id for a in cfg.assets]
    pid = [p.id for p in cfg.pairs]

    def order_doc(o: Order) -> OrderDoc:
        return OrderDoc(
            order_id=o.order_id, account=o.account, pair=pid[o.pair],
            side="buy" if o.side == BUY else "sell", ordertype=o.ordertype, status=o.status,
            price=o.price, qty=o.qty, filled=o.filled, orig_qty=o.orig_qty, display=o.display,
            shown=o.shown, hold=o.hold, fee_in_base=o.fee_in_base, post_only=o.post_only,
            tif=o.tif, expire_ts=o.expire_ts, stp=o.stp, userref=o.userref,
            cl_ord_id=o.cl_ord_id, opened_ts=o.opened_ts, trigger=o.trigger,
            trigger_dir=o.trigger_dir, limit=o.limit, trail=o.trail, trail_pct=o.trail_pct,
            limit_offset=o.limit_offset, limit_offset_pct=o.limit_offset_pct,
            extreme=o.extreme, amends=o.amends,
        )  # fmt: skip

    markets = []
    for m in ex.markets:
        markets.append(
            MarketDoc(
                pair=m.spec.id,
                mode=m.mode,
                last_price=m.last_price,
                bids=[[p, *(o.order_id for o in os)] for p, os in m.book.levels(BUY)],
                asks=[[p, *(o.order_id for o in os)] for p, os in m.book.levels(SELL)],
            )
        )
    accounts = []
    for a_id in sorted(ex.accounts):
        a = ex.accounts[a_id]
        accounts.append(
            AccountDoc(
                account=a_id,
                balances=[
                    BalanceDoc(aid[i], a.avail[i], a.held[i])
                    for i in range(len(aid))
                    if a.avail[i] or a.held[i]
                ],
                volume_days=sorted(a.volume_days.items()),
                dead_man_switch_ts=a.dms_ts,
            )
        )
    return StateDoc(
        version=SNAPSHOT_VERSION,
        seq=ex.seq,
        ts=ex.ts,
        day=ex.day,
        global_mode=ex.global_mode,
        next_order_id=ex.next_order_id,
        next_trade_id=ex.next_trade_id,
        next_ledger_id=ex.next_ledger_id,
        next_amend_id=ex.next_amend_id,
        funding=[
            FundingDoc(aid[i], ex.deposits_on[i], ex.withdrawals_on[i]) for i in range(len(aid))
        ],
        markets=markets,
        accounts=accounts,
        orders=[order_doc(ex.orders[k]) for k in sorted(ex.orders)],
        withdrawals=[
            WithdrawalDoc(
                ref=w.ref,
                account=w.account,
                asset=aid[w.asset],
                amount=w.amount,
                fee=w.fee,
                address=w.address,
                stage=w.stage,
                txid=w.txid,
            )
            for _, w in sorted(ex.withdrawals.items())
        ],
        funding_refs=sorted(ex.funding_refs),
        promotions=[
            PromotionDoc(
                promo_id=p.promo_id,
                maker_ppm=p.maker_ppm,
                taker_ppm=p.taker_ppm,
                start_ts=p.start_ts,
                end_ts=p.end_ts,
                scope=p.scope,
                pairs=[pid[i] for i in p.pairs],
                accounts=list(p.accounts),
                reason=p.reason,
                state=p.state,
            )
            for _, p in sorted(ex.promos.items())
        ],
        stages=list(ex.stages),
        stage_reason=ex.stage_reason,
    )


def state_bytes(ex: Exchange) -> bytes:
    """The canonical encoding of the state document."""
    return _encoder.encode(state_doc(ex))


def state_hash(ex: Exchange) -> str:
    """SHA-256 (hex) of the canonical state document."""
    return hashlib.sha256(state_bytes(ex)).hexdigest()


def snapshot_state_hash(data: bytes) -> str:
    """The state hash of the engine a snapshot describes, without restoring one: what any
    correct restore of it must report."""
    return hashlib.sha256(
        _encoder.encode(msgspec.msgpack.decode(data, type=Snapshot).state)
    ).hexdigest()


def snapshot(ex: Exchange) -> bytes:
    """The full snapshot: state document plus the hash chain to continue from."""
    return _encoder.encode(
        Snapshot(
            state=state_doc(ex),
            chain_block=ex.chain_block,
            chain_pending=cast(list[tuple[int, list[AnyEvent]]], ex.chain_pending),
        )
    )


class SnapshotError(ValueError):
    """A snapshot that this engine cannot restore."""


def restore(config: MarketConfig, data: bytes) -> Exchange:
    """Rebuild an engine from `snapshot()` output under the same market configuration."""
    try:
        snap = msgspec.msgpack.decode(data, type=Snapshot)
    except (msgspec.DecodeError, ValueError) as exc:  # ValueError: e.g. bad UTF-8
        raise SnapshotError(f"unreadable snapshot: {exc}") from exc
    doc = snap.state
    if doc.version != SNAPSHOT_VERSION:
        raise SnapshotError(f"snapshot version {doc.version} is not {SNAPSHOT_VERSION}")
    ex = Exchange(config)
    try:
        _load(ex, doc)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise SnapshotError(f"snapshot is inconsistent or for other markets: {exc!r}") from exc
    ex.chain_block = snap.chain_block
    ex.chain_pending = [(seq, list[Event](events)) for seq, events in snap.chain_pending]
    return ex


def _load(ex: Exchange, doc: StateDoc) -> None:
    aidx = {a.id: a.index for a in ex.config.assets}
    pidx = {p.id: p.index for p in ex.config.pairs}
    ex.seq, ex.ts, ex.day, ex.global_mode = doc.seq, doc.ts, doc.day, doc.global_mode
    ex.day_end = (doc.day + 1) * DAY_NS
    ex.next_order_id, ex.next_trade_id = doc.next_order_id, doc.next_trade_id
    ex.next_ledger_id, ex.next_amend_id = doc.next_ledger_id, doc.next_amend_id
    for f in doc.funding:
        ex.deposits_on[aidx[f.asset]] = f.deposits
        ex.withdrawals_on[aidx[f.asset]] = f.withdrawals
    for ad in doc.accounts:
        a: Account = ex._account(ad.account)
        for b in ad.balances:
            a.avail[aidx[b.asset]] = b.available
            a.held[aidx[b.asset]] = b.held
        a.volume_days = dict(ad.volume_days)
        a.volume30 = sum(a.volume_days.values())
        if a.volume_days:
            ex.volume_accounts.add(a.account_id)
        ex._retier(a, emit=False)
        for i in range(len(a.avail)):
            ex.supply[i] += a.avail[i] + a.held[i]
        a.dms_ts = ad.dead_man_switch_ts
        if a.dms_ts > ex.ts:  # an overdue switch waits for a market to leave maintenance
            heappush(ex.timers, (a.dms_ts, TIMER_DMS, a.account_id, ""))
    for od in doc.orders:
        o = Order(
            order_id=od.order_id, account=od.account, pair=pidx[od.pair],
            side=BUY if od.side == "buy" else SELL, ordertype=od.ordertype, status=od.status,
            price=od.price, qty=od.qty, filled=od.filled, orig_qty=od.orig_qty,
            display=od.display, shown=od.shown, hold=od.hold, fee_in_base=od.fee_in_base,
            post_only=od.post_only, tif=od.tif, expire_ts=od.expire_ts, stp=od.stp,
            userref=od.userref, cl_ord_id=od.cl_ord_id, opened_ts=od.opened_ts,
            trigger=od.trigger, trigger_dir=od.trigger_dir, limit=od.limit, trail=od.trail,
            trail_pct=od.trail_pct, limit_offset=od.limit_offset,
            limit_offset_pct=od.limit_offset_pct, extreme=od.extreme, amends=od.amends,
        )  # fmt: skip
        ex.orders[o.order_id] = o
        ex.accounts[o.account].orders[o.order_id] = o
        if o.cl_ord_id is not None:
            ex.cl_ord_ids[(o.account, o.cl_ord_id)] = o.order_id
        if o.tif == GTD:
            heappush(ex.timers, (o.expire_ts, TIMER_EXPIRY, o.order_id, ""))
        if o.status == PENDING:
            ex._arm_trigger(ex.markets[o.pair], o)
    rested: set[int] = set()
    for md in doc.markets:
        m = ex.markets[pidx[md.pair]]
        m.mode, m.last_price = md.mode, md.last_price
        for side, levels in ((BUY, md.bids), (SELL, md.asks)):
            for level in levels:
                for oid in level[1:]:
                    o = ex.orders[oid]
                    if o.side != side or o.price != level[0] or o.pair != m.index or oid in rested:
                        raise ValueError(f"order {oid} misplaced in the book")
                    rested.add(oid)
                    m.book.rest(o)
    if rested != {o.order_id for o in (ex.orders[k] for k in ex.orders) if o.status == OPEN}:
        raise ValueError("open orders and book levels disagree")
    for wd in doc.withdrawals:
        ex.withdrawals[wd.ref] = Withdrawal(
            account=wd.account, asset=aidx[wd.asset], amount=wd.amount, fee=wd.fee, ref=wd.ref,
            address=wd.address, stage=wd.stage, txid=wd.txid,
        )  # fmt: skip
    ex.funding_refs = set(doc.funding_refs)
    for pd in doc.promotions:
        ex.promos[pd.promo_id] = Promotion(
            promo_id=pd.promo_id, maker_ppm=pd.maker_ppm, taker_ppm=pd.taker_ppm,
            start_ts=pd.start_ts, end_ts=pd.end_ts, scope=pd.scope,
            pairs=[pidx[p] for p in pd.pairs], accounts=list(pd.accounts), reason=pd.reason,
            state=pd.state,
        )  # fmt: skip
        if pd.state != "ended":
            if pd.start_ts > ex.ts:
                heappush(ex.timers, (pd.start_ts, TIMER_PROMO, 0, pd.promo_id))
            heappush(ex.timers, (pd.end_ts, TIMER_PROMO, 0, pd.promo_id))
    ex._assign_promos()
    ex.stages = [(ts, mode) for ts, mode in doc.stages]
    ex.stage_reason = doc.stage_reason
    for ts, mode in ex.stages:
        heappush(ex.timers, (ts, TIMER_STAGE, 0, mode))
