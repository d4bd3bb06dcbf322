"""Compensation: what a fee promotion or an outage cost each account, from the journal.

Two bases, both per account and per asset, over the trades a `Query` selects (a window
``[from, until)`` of command times, a scope, pairs, accounts, optionally one promotion):

* ``fees-paid``: the trading fees the account actually paid (the ``maker_fee`` or
  ``taker_fee`` of its side of each trade, in the asset it was charged in). What a refund
  for a degraded period gives back.
* ``waived``: what the account would have paid at its fee tier without promotions, minus
  what it paid. Restricted to one promotion, what that promotion alone was worth: the fee
  at the rate the trade would have had without it (other promotions active at the same
  time still apply) minus what was paid.

Nothing is estimated. The rate a trade would have had is rebuilt from the recorded events
the way the engine chose it (cambio.engine.exchange ``_fee_rates`` and ``_match``): the
account's tier rates from its ``FeeTierChanged`` events (initially the first tier), or for
a pair with its own schedule, that schedule at the account's 30-day volume, which is
rebuilt from the trades (valued in USD as the engine does, cambio.store.valuation) and
the days the commands' times pass; the promotions active at the trade from the
``PromotionChanged`` events. A taker's rate is the one it had when its order started
matching (the engine fixes it there, even if the order's own fills move it up a tier
half-way), a maker's the one it had at each fill. The fee is then recomputed in integers
with the engine's rounding (down). Every trade's recomputed *paid* fee is compared with
the recorded one, and every ``FeeTierChanged`` volume with the rebuilt one: a difference
(an engine whose fee rules this module does not know) is reported in ``problems``, and
the operator API then refuses to credit a ``waived`` amount.

The engine trades spot only: a ``margin`` scope selects nothing yet.

Crediting (done by the operator API, cambio.api.admin.compensation) pays each positive
amount as a ``Transfer`` from the fee account with kind ``credit`` and the ref
``<compensation id>/<account>/<asset>``; the engine refuses a ref it has seen, so running
the same compensation again pays nobody twice. The compensation id is the operator's, or
derived from the basis, the window and the promotion: narrowing it to pairs, accounts or a
scope, or changing the percentage, keeps the id, so a second run never pays an account
again for the same compensation (give another ``--id`` to pay a distinct one).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cambio.engine.exchange import DAY_NS, VOLUME_DAYS
from cambio.engine.fees import Promotion, promo_rate, tier_rate
from cambio.journal.segments import Journal
from cambio.model.commands import SCOPE_ALL, SCOPE_MARGIN, SCOPE_SPOT
from cambio.model.config import PPM, MarketConfig
from cambio.model.decimals import DecimalFormatError, format_units, percent_text, to_units
from cambio.model.events import Event, FeeTierChanged, PromotionChanged, Trade
from cambio.model.ledger import FEE_ACCOUNT
from cambio.model.times import iso_ns
from cambio.store.valuation import UsdValuation

FEES_PAID = "fees-paid"
WAIVED = "waived"
BASES = (FEES_PAID, WAIVED)
SCOPES = (SCOPE_SPOT, SCOPE_MARGIN, SCOPE_ALL)
CREDIT_KIND = "credit"  # a Kraken ledger type: the entry the trader sees in Ledgers
MAX_PERCENT_PPM = 1000 * 10_000  # 1,000 %: anything more is a typo
MAX_LISTED = 10  # problems listed one by one; the rest are counted
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# (seq, ts, events) of one command, as cambio.journal.segments.Journal.events yields them
Applied = tuple[int, int, Sequence[Event]]


class CompensationError(ValueError):
    """A query that cannot be answered (unknown promotion, bad percentage...)."""


def parse_percent(text: str) -> int:
    """A percentage ("100", "12.5") as parts per million of the amount (100 % = PPM)."""
    try:
        ppm = to_units(str(text), 4)
    except DecimalFormatError:
        raise CompensationError(
            f"percent: a number above 0 and at most 1000, at most 4 decimals (not {text!r})"
        ) from None
    if not 0 < ppm <= MAX_PERCENT_PPM:
        raise CompensationError(f"percent: above 0 and at most 1000 (not {text})")
    return ppm


@dataclass(frozen=True)
class Query:
    """Which trades count and what is counted of them. Pairs are pair indexes; empty
    pairs or accounts mean all; `from_ts`/`until_ts` None mean unbounded (with a
    promotion, its own time is the bound)."""

    basis: str
    from_ts: int | None = None
    until_ts: int | None = None
    promotion: str | None = None
    scope: str = SCOPE_ALL
    pairs: tuple[int, ...] = ()
    accounts: tuple[int, ...] = ()
    percent_ppm: int = PPM
    comp_id: str = ""  # the operator's; derived from the parameters when empty

    def __post_init__(self) -> None:
        if self.basis not in BASES:
            raise CompensationError(f"basis: one of {', '.join(BASES)} (not {self.basis!r})")
        if self.scope not in SCOPES:
            raise CompensationError(f"scope: one of {', '.join(SCOPES)} (not {self.scope!r})")
        if self.promotion is None and (self.from_ts is None or self.until_ts is None):
            raise CompensationError("give a window (from and until), a promotion, or both")
        if self.from_ts is not None and self.until_ts is not None and self.until_ts <= self.from_ts:
            raise CompensationError("until must be after from")
        if not 0 < self.percent_ppm <= MAX_PERCENT_PPM:
            raise CompensationError("percent: above 0 and at most 1000")
        if self.comp_id and not _ID.fullmatch(self.comp_id):
            raise CompensationError(
                "id: up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )

    @property
    def id(self) -> str:
        """The compensation's id: the operator's, or a digest of what names the
        compensation (basis, window, promotion), not of how it is narrowed or scaled."""
        if self.comp_id:
            return self.comp_id
        named = [self.basis, self.from_ts, self.until_ts, self.promotion]
        digest = hashlib.sha256(json.dumps(named).encode()).hexdigest()
        return f"comp-{digest[:16]}"


def credit_ref(comp_id: str, account: int, asset_id: str) -> str:
    """The Transfer ref of one credit: the same compensation, account and asset always
    give the same ref, which the engine accepts once."""
    return f"{comp_id}/{account}/{asset_id}"


@dataclass
class Share:
    """One account's part: sides of trades counted, amount per asset index (units)."""

    trades: int = 0
    units: dict[int, int] = field(default_factory=dict)


@dataclass
class Compensation:
    """The answer to a Query over the journal up to `through_seq` (time `through_ts`)."""

    query: Query
    through_seq: int = 0
    through_ts: int = 0
    trades: int = 0  # trades with at least one side counted
    shares: dict[int, Share] = field(default_factory=dict)
    promotion: PromotionChanged | None = None  # the queried one, as last recorded
    promotion_from: int | None = None  # when it became active
    problems: list[str] = field(default_factory=list)
    unlisted: int = 0  # problems beyond MAX_LISTED

    @property
    def window(self) -> tuple[int | None, int | None]:
        """[from, until) as counted: the query's, else the promotion's own time."""
        q, p = self.query, self.promotion
        start, end = q.from_ts, q.until_ts
        if p is not None:
            if start is None:
                start = self.promotion_from
                if start is None:  # never active (yet): its announced start, if it had one
                    start = p.start_ts or None
            if end is None:
                end = p.end_ts
            elif p.state == "ended":
                end = min(end, p.end_ts)
        return start, end

    @property
    def closed(self) -> bool:
        """Whether no trade still to come can count: the window ended at or before the
        last command read, or the promotion did. Only a closed compensation is final."""
        _, end = self.window
        p = self.promotion
        return (end is not None and end <= self.through_ts) or (
            p is not None and p.state == "ended"
        )

    def amounts(self) -> list[tuple[int, int, int]]:
        """(account, asset index, units) to pay, percentage applied (rounded down),
        positive ones only, by account then asset."""
        pct = self.query.percent_ppm
        out = []
        for account in sorted(self.shares):
            for asset, units in sorted(self.shares[account].units.items()):
                scaled = units * pct // PPM
                if scaled > 0:
                    out.append((account, asset, scaled))
        return out

    def report(self, config: MarketConfig) -> dict[str, Any]:
        """The computation as the operator reads it: ids, ISO times, amounts as integers
        (asset units) and exact decimal strings."""
        q = self.query
        assets = config.assets

        def money(asset: int, units: int) -> dict[str, Any]:
            return {"units": units, "amount": format_units(units, assets[asset].units)}

        per_account: dict[int, dict[str, Any]] = {}
        for account in sorted(self.shares):
            per_account[account] = {"account": account, "trades": self.shares[account].trades,
                                    "amounts": {}}  # fmt: skip
        totals: dict[int, int] = {}
        for account, asset, units in self.amounts():
            per_account[account]["amounts"][assets[asset].id] = money(asset, units)
            totals[asset] = totals.get(asset, 0) + units
        start, end = self.window
        p = self.promotion
        problems = list(self.problems)
        if self.unlisted:
            problems.append(f"... and {self.unlisted} more")
        return {
            "id": q.id,
            "basis": q.basis,
            "from": iso_ns(start) if start is not None else None,
            "until": iso_ns(end) if end is not None else None,
            "promotion": None
            if p is None
            else {
                "promo_id": p.promo_id,
                "state": p.state,
                "maker": percent_text(p.maker_ppm),
                "taker": percent_text(p.taker_ppm),
                "scope": p.scope,
                "pairs": [config.pairs[i].id for i in p.pairs],
                "accounts": list(p.accounts),
                "reason": p.reason,
            },
            "scope": q.scope,
            "pairs": [config.pairs[i].id for i in q.pairs],
            "accounts": list(q.accounts),
            "percent": percent_text(q.percent_ppm),
            "through_seq": self.through_seq,
            "through": iso_ns(self.through_ts) if self.through_ts else None,
            "closed": self.closed,
            "trades": self.trades,
            "per_account": list(per_account.values()),
            "totals": {assets[a].id: money(a, u) for a, u in sorted(totals.items())},
            "problems": problems,
        }


class _Rebuild:
    """The fee-relevant state the engine had, rebuilt event by event."""

    def __init__(self, config: MarketConfig) -> None:
        self.config = config
        # the engine's default schedule is the first pair's; a pair whose schedule
        # differs reads its own at the account's live 30-day volume
        first = config.pairs[0] if config.pairs else None
        self.maker_tiers = first.maker_tiers if first else ()
        self.taker_tiers = first.taker_tiers if first else ()
        self.custom = [
            (p.maker_tiers, p.taker_tiers) != (self.maker_tiers, self.taker_tiers)
            for p in config.pairs
        ]
        self.first_rates = (
            (tier_rate(self.maker_tiers, 0)[0], tier_rate(self.taker_tiers, 0)[0])
            if first
            else (0, 0)
        )
        self.rates: dict[int, tuple[int, int]] = {}  # from FeeTierChanged
        self.volume: dict[int, int] = {}  # 30-day fee volume
        self.volume_days: dict[int, dict[int, int]] = {}
        self.valuation = UsdValuation(config)
        self.last = [0] * len(config.pairs)
        self.promos: dict[str, Promotion] = {}  # active ones
        self.now = 0
        self.day = -1
        # taker order -> its tier rate when it started matching (within one command)
        self.taker_rate: dict[int, int] = {}

    def command(self, ts: int) -> None:
        """A command at `ts`: the engine's clock and day move (it drops fee volume
        older than 30 days when a command starts a new day)."""
        self.taker_rate.clear()
        if ts > self.now:
            self.now = ts
        day = self.now // DAY_NS
        if day != self.day:
            self.day = day
            cutoff = day - VOLUME_DAYS + 1
            for account in list(self.volume_days):
                days = self.volume_days[account]
                for d in [d for d in days if d < cutoff]:
                    self.volume[account] -= days.pop(d)
                if not days:  # as the engine does: only accounts with volume are visited
                    del self.volume_days[account]

    def tier(self, account: int, pair: int, maker: bool) -> int:
        """The account's rate before promotions, now."""
        if self.custom[pair]:
            spec = self.config.pairs[pair]
            tiers = spec.maker_tiers if maker else spec.taker_tiers
            return tier_rate(tiers, self.volume.get(account, 0))[0]
        return self.rates.get(account, self.first_rates)[0 if maker else 1]

    def covering(self, pair: int) -> list[Promotion]:
        """The active promotions that cover spot trades of `pair`, in the engine's order
        (which does not matter: the lowest cap wins)."""
        return [
            p
            for p in self.promos.values()
            if p.scope in (SCOPE_SPOT, SCOPE_ALL) and (not p.pairs or pair in p.pairs)
        ]

    def traded(self, t: Trade) -> None:
        """After a trade: the last price moves and both sides gain fee volume."""
        self.last[t.pair] = t.price
        usd = self.valuation.value(t.pair, t.cost, self.last)
        if usd:
            for account in (t.maker_account, t.taker_account):
                self.volume[account] = self.volume.get(account, 0) + usd
                days = self.volume_days.setdefault(account, {})
                days[self.day] = days.get(self.day, 0) + usd

    def promotion(self, e: PromotionChanged) -> None:
        if e.state == "active":
            self.promos[e.promo_id] = Promotion(
                promo_id=e.promo_id, maker_ppm=e.maker_ppm, taker_ppm=e.taker_ppm,
                start_ts=e.start_ts, end_ts=e.end_ts, scope=e.scope, pairs=list(e.pairs),
                accounts=list(e.accounts), reason=e.reason, state=e.state,
            )  # fmt: skip
        else:
            self.promos.pop(e.promo_id, None)


def _fee(t: Trade, base_per_lot: int, rate: int, in_base: bool) -> int:
    """The engine's fee at `rate` (ppm) for one side of `t`: of the base amount when
    charged in base, else of the cost; rounded down."""
    return t.qty * base_per_lot * rate // PPM if in_base else t.cost * rate // PPM


def compensate(
    config: MarketConfig,
    applied: Iterable[Applied],
    query: Query,
    through_seq: int | None = None,
) -> Compensation:
    """Answer `query` from the journal's recorded events (`applied`: every command from
    seq 1 on, in order), reading up to `through_seq` (default: all given)."""
    result = Compensation(query)
    state = _Rebuild(config)
    margin_only = query.scope == SCOPE_MARGIN  # no margin trades exist yet
    pairs = set(query.pairs)
    accounts = set(query.accounts)
    wanted = query.promotion
    waived = query.basis == WAIVED
    start = query.from_ts if query.from_ts is not None else -1
    end = query.until_ts

    def problem(text: str) -> None:
        if len(result.problems) < MAX_LISTED:
            result.problems.append(text)
        else:
            result.unlisted += 1

    for seq, ts, events in applied:
        if through_seq is not None and seq > through_seq:
            break
        result.through_seq, result.through_ts = seq, max(ts, result.through_ts)
        state.command(ts)
        counts = start <= ts and (end is None or ts < end) and not margin_only
        for e in events:
            if type(e) is Trade:
                spec = config.pairs[e.pair]
                bpl = spec.base_per_lot
                maker_tier = state.tier(e.maker_account, e.pair, True)
                taker_tier = state.taker_rate.setdefault(
                    e.taker_order, state.tier(e.taker_account, e.pair, False)
                )
                promos = state.covering(e.pair)
                under = wanted is not None and any(p.promo_id == wanted for p in promos)
                counted = False
                for maker, account, tier, fee, in_base in (
                    (True, e.maker_account, maker_tier, e.maker_fee, e.maker_fee_base),
                    (False, e.taker_account, taker_tier, e.taker_fee, e.taker_fee_base),
                ):
                    rate = promo_rate(promos, account, tier, maker) if promos else tier
                    if _fee(e, bpl, rate, in_base) != fee:
                        problem(
                            f"seq {seq}: trade {e.trade_id} recorded a "
                            f"{'maker' if maker else 'taker'} fee of {fee}; the rates rebuilt "
                            f"from the journal give {_fee(e, bpl, rate, in_base)}"
                        )
                    if not counts or (pairs and e.pair not in pairs):
                        continue
                    if accounts and account not in accounts:
                        continue
                    if wanted is not None:
                        # the trade's side must be one the promotion covered
                        if not under:
                            continue
                        covered = state.promos[wanted].accounts
                        if covered and account not in covered:
                            continue
                    if not waived:
                        amount = fee
                    elif wanted is None:
                        amount = _fee(e, bpl, tier, in_base) - fee
                    else:
                        others = [p for p in promos if p.promo_id != wanted]
                        without = promo_rate(others, account, tier, maker) if others else tier
                        amount = _fee(e, bpl, without, in_base) - fee
                    share = result.shares.setdefault(account, Share())
                    share.trades += 1
                    asset = spec.base if in_base else spec.quote
                    share.units[asset] = share.units.get(asset, 0) + amount
                    counted = True
                if counted:
                    result.trades += 1
                state.traded(e)
            elif type(e) is FeeTierChanged:
                state.rates[e.account] = (e.maker_ppm, e.taker_ppm)
                if e.volume != state.volume.get(e.account, 0):
                    problem(
                        f"seq {seq}: account {e.account} has a 30-day volume of {e.volume}; "
                        f"rebuilt from the journal: {state.volume.get(e.account, 0)}"
                    )
            elif type(e) is PromotionChanged:
                state.promotion(e)
                if e.promo_id == wanted:
                    result.promotion = e
                    if e.state == "active" and result.promotion_from is None:
                        result.promotion_from = ts
    if wanted is not None and result.promotion is None:
        raise CompensationError(f"unknown promotion {wanted!r}")
    result.shares.pop(FEE_ACCOUNT, None)  # the exchange does not compensate itself
    return result


def compensate_journal(
    config: MarketConfig,
    journal: Journal,
    query: Query,
    through_seq: int | None = None,
) -> Compensation:
    """`compensate` over a cambio.journal.segments.Journal (read-only: it only reads the
    records durable when it starts). Blocking: run it off the event loop."""
    return compensate(config, journal.events(1), query, through_seq)
