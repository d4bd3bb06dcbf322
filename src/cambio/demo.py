"""The demo stream: a scripted story plus a seeded random tail, replayed through the engine.

`run_demo` plays the part of the sequencer (it stamps each command with ``seq`` and ``ts``),
feeds the engine one command at a time and condenses the events into a `DemoReport` that
`cambio demo` prints. The stream depends only on `steps` and `seed` (and the engine's own
answers), so two runs with the same arguments end in the same state hash and hash chain.

Amounts in the script are written as decimal strings and turned into the engine's integer
units here, at the edge, exactly as the API gateway will do.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cambio.engine import Exchange
from cambio.model import commands as c
from cambio.model.config import MarketConfig, PairSpec, load_config
from cambio.model.decimals import format_units, to_units
from cambio.model.events import (
    CommandRejected,
    Deposited,
    Event,
    MarketModeChanged,
    OrderAccepted,
    OrderClosed,
    OrderRejected,
    OrderTriggered,
    PromotionChanged,
    Trade,
)
from cambio.model.ledger import FEE_ACCOUNT, postings

GENESIS_NS = 1_735_689_600 * 10**9  # 2025-01-01T00:00:00Z
STEP_NS = 1_000_000  # 1 ms between commands
NAMES = {FEE_ACCOUNT: "fees", 1: "alice", 2: "bob", 3: "carol", 4: "dave", 5: "erin"}
TRADERS = (1, 2, 3, 4)  # erin (5) is the one with almost no money

# Per-pair starting mid prices (decimal strings) for the script and the random tail.
MIDS = {
    "XXBTZUSD": "60000.0",
    "XXBTZEUR": "55000.0",
    "XETHZUSD": "3000.00",
    "XETHXXBT": "0.05000",
    "SOLUSD": "150.00",
    "USDTZUSD": "1.00000",
}
# What each trader deposits; erin gets only ERIN_FUNDING.
FUNDING = {
    "ZUSD": "500000",
    "ZEUR": "500000",
    "USDT": "500000",
    "XXBT": "100",
    "XETH": "2000",
    "SOL": "50000",
}
ERIN_FUNDING = {"ZUSD": "100"}


class Sequencer:
    """Stamps commands with consecutive sequence numbers and increasing nanosecond times."""

    def __init__(self, genesis_ns: int = GENESIS_NS) -> None:
        self.seq = 0
        self.ts = genesis_ns

    def stamp(self, cmd: c.Command, advance_ns: int = STEP_NS) -> c.Command:
        self.seq += 1
        self.ts += advance_ns
        return msgspec.structs.replace(cmd, seq=self.seq, ts=self.ts)


@dataclass
class PairStats:
    """What traded on one pair: counts and volume in lots, prices in price units."""

    trades: int = 0
    volume: int = 0
    low: int = 0
    high: int = 0
    last: int = 0

    def add(self, price: int, qty: int) -> None:
        self.low = price if self.trades == 0 else min(self.low, price)
        self.high = max(self.high, price)
        self.last = price
        self.trades += 1
        self.volume += qty


@dataclass
class StoryLine:
    seq: int
    what: str
    outcome: str


@dataclass
class DemoReport:
    """Everything `cambio demo` prints; plain data, so tests can look at it too."""

    config: MarketConfig
    steps: int
    seed: int
    commands: int = 0
    events: Counter[str] = field(default_factory=Counter)
    story: list[StoryLine] = field(default_factory=list)
    pairs: dict[int, PairStats] = field(default_factory=dict)
    rejections: Counter[str] = field(default_factory=Counter)
    balances: dict[int, dict[int, tuple[int, int]]] = field(default_factory=dict)
    deposited: dict[int, int] = field(default_factory=dict)
    ledger: dict[tuple[int, int], int] = field(default_factory=dict)  # (account, asset) -> sum
    state_hash: str = ""
    chain: str = ""

    @property
    def trades(self) -> int:
        return sum(s.trades for s in self.pairs.values())

    def funds_conserved(self) -> bool:
        """Sum over all accounts (available + held) equals what was deposited, per asset."""
        for asset in range(len(self.config.assets)):
            total = sum(sum(b[asset]) for b in self.balances.values())
            if total != self.deposited.get(asset, 0):
                return False
        return True

    def ledger_matches(self) -> bool:
        """Every account's balance (available + held) equals the sum of its ledger postings."""
        for account, by_asset in self.balances.items():
            for asset, (avail, held) in by_asset.items():
                if avail + held != self.ledger.get((account, asset), 0):
                    return False
        return True


class Demo:
    """Feeds the demo stream through an Exchange and records what happened."""

    def __init__(self, steps: int, seed: int, config: MarketConfig | None = None) -> None:
        self.config = config if config is not None else load_config()
        self.exchange = Exchange(self.config)
        self.sequencer = Sequencer()
        self.rng = random.Random(seed)
        self.report = DemoReport(config=self.config, steps=steps, seed=seed)
        self.open_orders: dict[int, int] = {}  # order id -> account, while on the book
        self.order_pair: dict[int, int] = {}  # order id -> pair index, for every order seen
        self.mids = {p.index: self.price(p, MIDS.get(p.id, "1")) for p in self.config.pairs}

    # -- units at the edge --------------------------------------------------------------
    def price(self, pair: PairSpec, text: str) -> int:
        return to_units(text, pair.pair_decimals)

    def lots(self, pair: PairSpec, text: str) -> int:
        return to_units(text, pair.lot_decimals)

    def fmt_price(self, pair: PairSpec, price: int) -> str:
        return format_units(price, pair.pair_decimals)

    def fmt_lots(self, pair: PairSpec, qty: int) -> str:
        base = self.config.assets[pair.base]
        return format_units(qty, pair.lot_decimals, base.display_decimals)

    # -- feeding the engine -------------------------------------------------------------
    def apply(self, cmd: c.Command, advance_ns: int = STEP_NS) -> list[Event]:
        stamped = self.sequencer.stamp(cmd, advance_ns)
        events = self.exchange.apply(stamped)
        self.report.commands += 1
        for ev in events:
            self.observe(ev)
        return events

    def observe(self, ev: Event) -> None:
        r = self.report
        r.events[type(ev).__name__] += 1
        for posting in postings(ev, self.config):
            key = (posting.account, posting.asset)
            r.ledger[key] = r.ledger.get(key, 0) + posting.amount
        if isinstance(ev, Trade):
            r.pairs.setdefault(ev.pair, PairStats()).add(ev.price, ev.qty)
            self.mids[ev.pair] = ev.price
        elif isinstance(ev, OrderAccepted):
            self.open_orders[ev.order_id] = ev.account
            self.order_pair[ev.order_id] = ev.pair
        elif isinstance(ev, OrderClosed):
            self.open_orders.pop(ev.order_id, None)
        elif isinstance(ev, OrderRejected | CommandRejected):
            r.rejections[ev.error] += 1
        elif isinstance(ev, Deposited):
            r.deposited[ev.asset] = r.deposited.get(ev.asset, 0) + ev.amount

    def say(self, what: str, cmd: c.Command, advance_ns: int = STEP_NS) -> None:
        """Apply one scripted command and record a one-line account of its outcome."""
        events = self.apply(cmd, advance_ns)
        self.report.story.append(StoryLine(self.sequencer.seq, what, self.describe(events)))

    def describe(self, events: list[Event]) -> str:
        parts: list[str] = []
        trades = [e for e in events if isinstance(e, Trade)]
        for ev in events:
            if isinstance(ev, OrderAccepted):
                parts.append(f"order {ev.order_id} {ev.status}")
            elif isinstance(ev, OrderTriggered):
                pair = self.config.pairs[self.order_pair[ev.order_id]]
                at = self.fmt_price(pair, ev.trigger_price)
                parts.append(f"order {ev.order_id} triggered at {at}")
            elif isinstance(ev, OrderClosed):
                status = "filled" if ev.status == "closed" else ev.status
                why = f" ({ev.reason})" if ev.reason else ""
                parts.append(f"order {ev.order_id} {status}{why}")
            elif isinstance(ev, OrderRejected | CommandRejected):
                parts.append(f"rejected: {ev.error}")
            elif isinstance(ev, PromotionChanged):
                parts.append(f"promotion {ev.promo_id} {ev.state}")
            elif isinstance(ev, MarketModeChanged):
                parts.append(f"{self.config.pairs[ev.pair].wsname} now {ev.mode}")
        if trades:
            pair = self.config.pairs[trades[0].pair]
            qty = sum(t.qty for t in trades)
            prices = sorted({t.price for t in trades})
            span = " / ".join(self.fmt_price(pair, p) for p in prices)
            fees = sum(
                (0 if t.maker_fee_base else t.maker_fee) + (0 if t.taker_fee_base else t.taker_fee)
                for t in trades
            )
            quote = self.config.assets[pair.quote]
            parts.append(
                f"{len(trades)} trade(s): {self.fmt_lots(pair, qty)} @ {span}, fees "
                f"{format_units(fees, quote.units, quote.decimals)} {quote.altname}"
            )
        return "; ".join(parts) or "no events"

    # -- the stream ---------------------------------------------------------------------
    def run(self) -> DemoReport:
        self.fund()
        self.script()
        self.random_tail()
        self.finish()
        return self.report

    def fund(self) -> None:
        plan = [(account, FUNDING) for account in TRADERS] + [(5, ERIN_FUNDING)]
        for account, funding in plan:
            for asset_id, text in funding.items():
                asset = self.config.asset(asset_id)
                amount = to_units(text, asset.units)
                ref = f"dep-{account}-{asset.altname}"
                self.apply(c.Deposit(account=account, asset=asset.id, amount=amount, ref=ref))
        deposits = self.report.events["Deposited"]
        self.report.story.append(
            StoryLine(
                self.sequencer.seq,
                "fund alice, bob, carol and dave; erin gets 100 USD",
                f"{deposits} deposits",
            )
        )

    def order(
        self, account: int, pair_id: str, side: int, qty: str, price: str = "0", **kw: Any
    ) -> c.AddOrder:
        """An AddOrder with `qty` and `price` given as decimal strings."""
        pair = self.config.pair(pair_id)
        return c.AddOrder(
            account=account,
            pair=pair.id,
            side=side,
            qty=self.lots(pair, qty),
            price=self.price(pair, price),
            **kw,
        )

    def script(self) -> None:
        buy, sell, btc, eth, sol = c.BUY, c.SELL, "XXBTZUSD", "XETHZUSD", "SOLUSD"
        say, order = self.say, self.order
        say("alice asks 0.5 BTC @ 60010.0", order(1, btc, sell, "0.5", "60010.0"))
        say("alice asks 1.0 BTC @ 60020.0", order(1, btc, sell, "1.0", "60020.0"))
        say("alice bids 0.5 BTC @ 59990.0", order(1, btc, buy, "0.5", "59990.0"))
        say("alice bids 1.0 BTC @ 59980.0", order(1, btc, buy, "1.0", "59980.0"))
        say("alice bids 0.5 BTC @ 59900.0", order(1, btc, buy, "0.5", "59900.0"))
        say("alice bids 1.0 BTC @ 59850.0", order(1, btc, buy, "1.0", "59850.0"))
        say(
            "bob buys 0.8 BTC, limit 60020.0: crosses two levels",
            order(2, btc, buy, "0.8", "60020.0"),
        )
        say(
            "carol: iceberg sell 2.0 BTC @ 60030.0 showing 0.25",
            order(
                3,
                btc,
                sell,
                "2.0",
                "60030.0",
                ordertype=c.ICEBERG,
                display_qty=self.lots(self.config.pair(btc), "0.25"),
            ),
        )
        say("dave market-buys 1.0 BTC", order(4, btc, buy, "1.0", ordertype=c.MARKET))
        say(
            "bob: post-only bid @ 60030.0 would take liquidity",
            order(2, btc, buy, "0.1", "60030.0", post_only=True),
        )
        say(
            "dave: stop-loss sell 0.5 BTC, trigger 59900.0",
            order(4, btc, sell, "0.5", "59900.0", ordertype=c.STOP_LOSS),
        )
        say("erin (100 USD) bids 1 BTC @ 59000.0", order(5, btc, buy, "1", "59000.0"))
        say(
            "bob sells 2.0 BTC, limit 59800.0: trades down to 59900.0",
            order(2, btc, sell, "2.0", "59800.0"),
        )
        now = self.sequencer.ts
        say(
            "operator: promotion launch-eth, ETH/USD maker 0 %, taker 0.10 % for 1 h",
            c.CreatePromotion(
                promo_id="launch-eth",
                maker_ppm=0,
                taker_ppm=1000,
                start_ts=now,
                end_ts=now + 3600 * 10**9,
                pairs=[eth],
                reason="ETH/USD launch week",
            ),
        )
        say(
            "alice asks 10 ETH @ 3001.00",
            order(1, eth, sell, "10", "3001.00", cl_ord_id="alice-eth-1"),
        )
        say(
            "alice asks 10 ETH @ 3002.00",
            order(1, eth, sell, "10", "3002.00", cl_ord_id="alice-eth-2"),
        )
        say("bob buys 4 ETH @ 3001.00 (promotional fees)", order(2, eth, buy, "4", "3001.00"))
        say("alice cancels alice-eth-2", c.CancelOrder(account=1, cl_ord_id="alice-eth-2"))
        say("bob cancels an order that does not exist", c.CancelOrder(account=2, order_id=999_999))
        say(
            "operator: SOL/USD to post_only",
            c.SetMarketMode(pair=sol, mode=c.POST_ONLY, reason="demo: thin book"),
        )
        say("bob market-buys 10 SOL", order(2, sol, buy, "10", ordertype=c.MARKET))
        say(
            "alice: post-only ask 100 SOL @ 151.00",
            order(1, sol, sell, "100", "151.00", post_only=True),
        )
        say("operator: SOL/USD back online", c.SetMarketMode(pair=sol, mode=c.ONLINE))
        say("bob market-buys 10 SOL", order(2, sol, buy, "10", ordertype=c.MARKET))
        say("carol bids 20 ETH @ 0.04990 BTC", order(3, "XETHXXBT", buy, "20", "0.04990"))
        say("dave sells 5 ETH @ 0.04980 BTC", order(4, "XETHXXBT", sell, "5", "0.04980"))
        say("two hours pass (Tick): the promotion ends", c.Tick(), advance_ns=2 * 3600 * 10**9)

    def random_tail(self) -> None:
        """`steps` seeded-random commands over every pair: the busy part of the day."""
        rng, pairs, r = self.rng, self.config.pairs, self.report
        trades_before, rejections_before = r.trades, r.rejections.total()
        for _ in range(r.steps):
            roll = rng.random()
            if roll < 0.03:
                self.apply(c.Tick(), advance_ns=rng.randrange(1, 60) * 10**9)
                continue
            if roll < 0.25 and self.open_orders:
                oid = rng.choice(sorted(self.open_orders))
                self.apply(c.CancelOrder(account=self.open_orders[oid], order_id=oid))
                continue
            pair = pairs[rng.randrange(len(pairs))]
            account = rng.choice(TRADERS)
            side = rng.randrange(2)
            # ~10x the pair's minimum, in whole multiples of it
            qty = max(pair.ordermin, 1) * rng.randrange(1, 21)
            mid = self.mids[pair.index]
            spread = max(mid // 2000, pair.tick)  # offsets within ~0.05 % steps of the mid
            offset = rng.randrange(-4, 12) * spread
            price = mid - offset if side == c.BUY else mid + offset
            price = max(pair.tick, price - price % pair.tick)
            if roll < 0.32:
                cmd = c.AddOrder(
                    account=account, pair=pair.id, side=side, ordertype=c.MARKET, qty=qty
                )
            elif roll < 0.37:
                cmd = c.AddOrder(
                    account=account,
                    pair=pair.id,
                    side=side,
                    ordertype=c.ICEBERG,
                    qty=qty * 4,
                    price=price,
                    display_qty=qty,
                )
            elif roll < 0.42:
                cmd = c.AddOrder(
                    account=account, pair=pair.id, side=side, qty=qty, price=price, post_only=True
                )
            elif roll < 0.47:
                cmd = c.AddOrder(
                    account=account, pair=pair.id, side=side, qty=qty, price=price, tif=c.IOC
                )
            else:
                cmd = c.AddOrder(account=account, pair=pair.id, side=side, qty=qty, price=price)
            self.apply(cmd)
        outcome = (
            f"{r.trades - trades_before} trades, "
            f"{r.rejections.total() - rejections_before} rejections"
        )
        what = f"{r.steps} seeded-random commands (seed {r.seed})"
        r.story.append(StoryLine(self.sequencer.seq, what, outcome))

    def finish(self) -> None:
        r, ex = self.report, self.exchange
        for account in NAMES:
            r.balances[account] = {
                a.index: ex.balance(account, a.index) for a in self.config.assets
            }
        r.state_hash = ex.state_hash()
        r.chain = ex.chain()


def run_demo(steps: int = 1000, seed: int = 7, config: MarketConfig | None = None) -> DemoReport:
    """Replay the demo stream (script + `steps` seeded-random commands) and report on it."""
    return Demo(steps, seed, config).run()
