"""Demo traders for `cambio serve --demo`: a market maker and a taker on every pair.

They are ordinary clients that happen to live in the serve process: every order, amend,
cancel and deposit they make is an engine command sent through `ExchangeService.execute`,
sequenced and journaled like an API request, so `cambio verify` and replays see nothing
special. Randomness lives here, on the client side (seeded per pair, so runs are
reproducible-ish); the engine stays deterministic.

Per pair the maker keeps `LEVELS` post-only bids and asks around a mid price that takes a
small random walk (anchored to a reference price), amending its quotes each cycle; the
taker sends small market or IOC orders at random intervals, so trades print. Together
they send about `rate` commands a second per pair. The bots trade from the accounts
``demo-maker`` and ``demo-taker``; a human ``demo`` account gets deposits and a fresh API
key on every start. Accounts are reused across restarts, and only topped up when low.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from cambio.api.keys import KeyStore
from cambio.model.commands import (
    BUY,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    AddOrder,
    AmendOrder,
    CancelAll,
    Command,
    Deposit,
)
from cambio.model.config import AssetSpec, MarketConfig, PairSpec
from cambio.model.decimals import format_units, to_units
from cambio.model.errors import POST_ONLY_AMEND, UNKNOWN_ORDER
from cambio.model.events import (
    CommandRejected,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderClosed,
    OrderRejected,
)
from cambio.runtime.sequencer import InvalidCommand, SequencerStopped
from cambio.runtime.service import ExchangeService

log = logging.getLogger("cambio.demo")

MAKER, TAKER, HUMAN = "demo-maker", "demo-taker", "demo"
HUMAN_PERMISSIONS = ("query_funds", "query_orders", "trade", "withdraw")
DEFAULT_RATE = 4.0  # commands per second per pair, maker and taker together
LEVELS = 3  # quotes a side
STEP = 0.0005  # distance between quote levels (and from mid to the touch), fraction of mid
SIGMA = 0.0004  # random-walk step of the mid per maker cycle (lognormal)
REVERSION = 0.002  # pull of the mid back towards its anchor per cycle
HALT_BACKOFF = 5.0  # seconds to wait after "the exchange is not taking commands"
TOP_UP_EVERY = 60.0  # seconds between checks of the bots' balances
EXPECTED = (UNKNOWN_ORDER, POST_ONLY_AMEND)  # a quote filled meanwhile, or the book moved
MAX_DEPOSIT = (1 << 63) // 64  # keeps the supply of an asset far from the engine's bound

# Reference prices in USD of common assets (by symbol or altname), to start the walks
USD_PRICES = {
    "BTC": 60_000.0,
    "XBT": 60_000.0,
    "ETH": 3_000.0,
    "SOL": 150.0,
    "USD": 1.0,
    "USDT": 1.0,
    "USDC": 1.0,
    "EUR": 1.08,
    "GBP": 1.27,
    "CHF": 1.12,
    "CAD": 0.73,
    "JPY": 0.0067,
    "XRP": 0.5,
    "ADA": 0.45,
    "DOT": 7.0,
    "LTC": 80.0,
    "DOGE": 0.15,
}
BOT_FUNDS_USD = 5_000_000.0  # what each bot holds of every asset, in USD
HUMAN_FUNDS = {"USD": "100000", "XBT": "10"}  # the demo account; other assets:
HUMAN_FUNDS_USD = 50_000.0  # about this much each
FALLBACK_WHOLE_UNITS = 1_000_000  # bot funds of an asset without a reference price


# ---------------------------------------------------------------------- prices and sizes
def usd_price(asset: AssetSpec) -> float | None:
    """The reference USD price of one whole `asset`, if it is a well-known one."""
    return USD_PRICES.get(asset.symbol.upper()) or USD_PRICES.get(asset.altname.upper())


def start_price(config: MarketConfig, pair: PairSpec) -> int:
    """A sensible opening price (price units) of `pair`: from the reference prices, or
    else a price at which the minimum order costs 20 times the minimum cost."""
    base, quote = usd_price(config.assets[pair.base]), usd_price(config.assets[pair.quote])
    if base and quote:
        price = base / quote * 10.0**pair.pair_decimals
    elif pair.ordermin and pair.costmin:
        price = 20 * pair.costmin / (pair.ordermin * pair.quote_per_pq)
    else:
        price = 10.0**pair.pair_decimals
    return max(100 * pair.tick, round(price / pair.tick) * pair.tick)


def unit_lots(config: MarketConfig, pair: PairSpec, price: int) -> int:
    """The bots' order-size unit (lots): over the minimum size and twice the minimum
    cost, and about 25 USD worth when the base has a reference price."""
    unit = 1
    base_usd = usd_price(config.assets[pair.base])
    if base_usd:
        worth = int(25 / base_usd * 10**pair.lot_decimals)
        unit = worth - worth % 10 ** (len(str(worth)) - 1) if worth > 0 else 1  # 1 digit
    least_cost = -(-2 * pair.costmin // max(1, price * pair.quote_per_pq))
    return max(unit, pair.ordermin, least_cost)


def walk(mid: float, anchor: float, rng: random.Random) -> float:
    """One step of the mid: lognormal noise, mean-reverting towards `anchor`."""
    return mid * math.exp(SIGMA * rng.gauss(0.0, 1.0) + REVERSION * math.log(anchor / mid))


def quote_price(pair: PairSpec, mid: float, side: int, level: int) -> int:
    """The maker's price for quote `level` (0: the touch) of `side`, on the tick grid."""
    step = max(pair.tick, mid * STEP)
    if side == BUY:
        price = math.floor((mid - step * (level + 1)) / pair.tick) * pair.tick
    else:
        price = math.ceil((mid + step * (level + 1)) / pair.tick) * pair.tick
    return max(pair.tick, price)


# ---------------------------------------------------------------------- funding
def bot_funds(config: MarketConfig) -> dict[str, int]:
    """Per asset (id), what a bot keeps: BOT_FUNDS_USD worth, in asset units."""
    out = {}
    for asset in config.assets:
        usd = usd_price(asset)
        whole = BOT_FUNDS_USD / usd if usd else float(FALLBACK_WHOLE_UNITS)
        out[asset.id] = min(MAX_DEPOSIT, int(whole * 10**asset.units))
    return out


def human_funds(config: MarketConfig) -> dict[str, int]:
    """Per asset (id), the demo account's funds: HUMAN_FUNDS, else a round amount worth
    about HUMAN_FUNDS_USD (two significant digits; 1000 without a reference price)."""
    out = {}
    for asset in config.assets:
        text = HUMAN_FUNDS.get(asset.altname) or HUMAN_FUNDS.get(asset.symbol)
        if text is None:
            usd = usd_price(asset)
            text = f"{float(f'{HUMAN_FUNDS_USD / usd:.2g}'):f}" if usd else "1000"
        units = to_units(str(Decimal(text).quantize(Decimal(1).scaleb(-asset.units))), asset.units)
        out[asset.id] = min(MAX_DEPOSIT, units)
    return out


# ---------------------------------------------------------------------- the demo account
@dataclass
class DemoAccount:
    account: int
    api_key: str
    api_secret: str
    funds: dict[str, str]  # asset altname: amount, what the account was topped up to


def banner(demo: DemoAccount, api_url: str, pairs: int, rate: float) -> str:
    """The block `cambio serve --demo` prints: the demo key and how to use it."""
    funds = ", ".join(f"{amount} {asset}" for asset, amount in demo.funds.items())
    hint = (
        f"import krakenex; k = krakenex.API('{demo.api_key}', '{demo.api_secret}'); "
        f"k.uri = '{api_url}'; print(k.query_private('Balance'))"
    )
    return "\n".join(
        [
            f"demo: bots make and take markets on {pairs} pairs (about {rate:g} commands/s "
            f"each), accounts {MAKER!r} and {TAKER!r}",
            f"demo account {demo.account} ({HUMAN!r}; not for real funds), topped up to {funds}",
            f"  api key     {demo.api_key}",
            f"  api secret  {demo.api_secret}",
            f'  try         python -c "{hint}"',
            "  ccxt        ex = ccxt.kraken({'apiKey': KEY, 'secret': SECRET}); "
            f"ex.urls['api']['public'] = ex.urls['api']['private'] = '{api_url}'",
        ]
    )


# ---------------------------------------------------------------------- the bots
@dataclass
class Quote:
    order_id: int
    price: int


@dataclass
class PairBots:
    """The maker's and the taker's state on one pair."""

    pair: PairSpec
    mid: float
    anchor: float
    unit: int
    maker_rng: random.Random
    taker_rng: random.Random
    quotes: dict[tuple[int, int], Quote] = field(default_factory=dict)  # (side, level)
    next_outer: int = 0


class DemoBots:
    """The demo's bots: `start()` sets the accounts up and launches one maker and one taker
    task per pair; `stop()` lets them finish what they are sending and withdraws the
    maker's quotes. Stop them before the service stops taking commands."""

    def __init__(
        self,
        service: ExchangeService,
        keys: KeyStore,
        last_trade: Callable[[str], tuple[int, int] | None] | None = None,
        rate: float = DEFAULT_RATE,
        seed: int = 1,
    ) -> None:
        self.service = service
        self.config = service.config
        self.keys = keys
        self.last_trade = last_trade
        self.rate = max(0.1, rate)
        self.seed = seed
        self.maker = self.taker = 0
        self.pairs: list[PairBots] = []
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._reported: set[tuple[str, str]] = set()
        self._last_top_up = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> DemoAccount:
        """Create or reuse the accounts, fund them, start trading; the demo account with
        a new API key. Raises SequencerStopped if the exchange is not taking commands."""
        self.maker = self._account(MAKER)
        self.taker = self._account(TAKER)
        human = self._account(HUMAN)
        bots = bot_funds(self.config)
        humans = human_funds(self.config)
        for account, funds in ((self.maker, bots), (self.taker, bots), (human, humans)):
            await self._top_up(account, funds, setup=True)
        self._last_top_up = time.monotonic()
        await self._send(CancelAll(account=self.maker), "setup", setup=True)  # after a crash
        await self.service.read_models_current()  # the last trades, to go on from there
        self.pairs = [self._pair_bots(p) for p in self.config.pairs]
        loop = asyncio.get_running_loop()
        for bots_of in self.pairs:
            for run in (self._run_maker, self._run_taker):
                self._tasks.append(loop.create_task(self._supervised(run, bots_of)))
        key = self.keys.create_key(human, HUMAN_PERMISSIONS)
        return DemoAccount(human, key.api_key, key.secret, self._shown(humans))

    async def stop(self, timeout: float = 3.0) -> None:
        """Let each bot finish the command it is sending, then withdraw the quotes."""
        self._stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.maker:
            with contextlib.suppress(SequencerStopped):
                await self.service.execute(CancelAll(account=self.maker))

    def _account(self, name: str) -> int:
        found = self.keys.account_named(name)
        return found if found is not None else self.keys.create_account(name)

    def _shown(self, funds: dict[str, int]) -> dict[str, str]:
        out = {}
        for asset_id, units in funds.items():
            asset = self.config.asset(asset_id)
            text = format_units(units, asset.units, asset.decimals)
            out[asset.altname] = text.rstrip("0").rstrip(".") if "." in text else text
        return out

    def _pair_bots(self, pair: PairSpec) -> PairBots:
        anchor = start_price(self.config, pair)
        last = self.last_trade(pair.id) if self.last_trade is not None else None
        mid = last[0] if last and anchor / 2 < last[0] < anchor * 2 else anchor
        return PairBots(
            pair=pair,
            mid=float(mid),
            anchor=float(anchor),
            unit=unit_lots(self.config, pair, mid),
            maker_rng=random.Random(f"{self.seed}:{pair.id}:maker"),
            taker_rng=random.Random(f"{self.seed}:{pair.id}:taker"),
        )

    # ------------------------------------------------------------------ funding
    async def _top_up(self, account: int, targets: dict[str, int], setup: bool = False) -> None:
        """Deposit what brings each asset back to its target, where it fell below half."""
        held = self.service.host.query("balances", account)
        for asset_id, target in targets.items():
            have = sum(held.get(asset_id, [0]))
            if have < target // 2:
                ref = f"demo-{account}-{asset_id}-{time.time_ns()}"
                cmd = Deposit(account=account, asset=asset_id, amount=target - have, ref=ref)
                await self._send(cmd, "funding", setup)

    async def _top_up_bots(self) -> None:
        now = time.monotonic()
        if now - self._last_top_up < TOP_UP_EVERY:
            return
        self._last_top_up = now
        funds = bot_funds(self.config)
        await self._top_up(self.maker, funds)
        await self._top_up(self.taker, funds)

    # ------------------------------------------------------------------ sending
    async def _send(self, cmd: Command, who: str, setup: bool = False) -> list[Event] | None:
        """The command's events, or None when the exchange did not take it (halted or
        stopping: wait a while; during `setup`, raise) or could not journal it. Refusals
        are logged, once per bot and error at warning level."""
        try:
            _, events = await self.service.execute(cmd)
        except SequencerStopped as exc:
            if setup:
                raise
            self._report(who, f"exchange not taking commands: {exc}")
            await self._pause(HALT_BACKOFF)
            return None
        except InvalidCommand as exc:
            self._report(who, f"invalid command: {exc}")
            return None
        for ev in events:
            if isinstance(ev, OrderRejected | CommandRejected) and ev.error not in EXPECTED:
                self._report(who, ev.error)
                if ev.error.startswith("EService:"):  # market or exchange halted
                    await self._pause(HALT_BACKOFF)
        return events

    def _report(self, who: str, what: str) -> None:
        """Log a bot's trouble: the first time at warning level, repeats at debug level."""
        level = logging.DEBUG if (who, what) in self._reported else logging.WARNING
        self._reported.add((who, what))
        log.log(level, "demo bot %s: %s (it keeps going)", who, what)

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless stopping; True once the bots are to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def _supervised(self, run: Callable[[PairBots], Awaitable[None]], bots: PairBots) -> None:
        """Run a bot until the bots stop; a bot that fails is logged and started again."""
        while not self._stopping.is_set():
            try:
                await run(bots)
            except Exception:
                log.exception("demo bot on %s failed; restarting it", bots.pair.altname)
                await self._pause(HALT_BACKOFF)

    # ------------------------------------------------------------------ the maker
    async def _run_maker(self, bots: PairBots) -> None:
        """Place the whole ladder, then each cycle: walk the mid, re-quote both touches
        and one outer level. About 3/4 of `rate` commands a second."""
        who = f"maker {bots.pair.altname}"
        for level in range(LEVELS):
            for side in (BUY, SELL):
                await self._quote(bots, side, level, who)
        cycle = 3 / (0.75 * self.rate)
        while not await self._pause(cycle * bots.maker_rng.uniform(0.8, 1.2)):
            before, bots.mid = bots.mid, walk(bots.mid, bots.anchor, bots.maker_rng)
            for side in (SELL, BUY) if bots.mid > before else (BUY, SELL):  # never crossing
                await self._quote(bots, side, 0, who)
            outer = bots.next_outer % (2 * (LEVELS - 1))
            bots.next_outer += 1
            await self._quote(bots, outer % 2, 1 + outer // 2, who)

    async def _quote(self, bots: PairBots, side: int, level: int, who: str) -> None:
        """Move the quote at (side, level) to its price now; place it anew if it is gone."""
        if self._stopping.is_set():
            return
        price = self._uncrossed(bots, side, quote_price(bots.pair, bots.mid, side, level))
        current = bots.quotes.get((side, level))
        if current is None:
            await self._place(bots, side, level, price, who)
        elif current.price != price:
            await self._amend(bots, side, level, current, price, who)

    def _uncrossed(self, bots: PairBots, side: int, price: int) -> int:
        """`price`, moved back where needed so it does not reach the maker's own quotes
        on the other side (which have not followed the mid yet)."""
        other = [q.price for (s, _), q in bots.quotes.items() if s != side]
        if not other:
            return price
        if side == BUY:
            return min(price, min(other) - bots.pair.tick)
        return max(price, max(other) + bots.pair.tick)

    async def _place(self, bots: PairBots, side: int, level: int, price: int, who: str) -> None:
        size = bots.unit * bots.maker_rng.randint(3, 10) * (level + 1)
        cmd = AddOrder(
            account=self.maker,
            pair=bots.pair.id,
            side=side,
            qty=size,
            ordertype=LIMIT,
            price=price,
            post_only=True,
        )
        events = await self._send(cmd, who) or []
        closed = {ev.order_id for ev in events if isinstance(ev, OrderClosed)}
        for ev in events:  # a post-only order that would have crossed is closed at once
            if isinstance(ev, OrderAccepted) and ev.order_id not in closed:
                bots.quotes[(side, level)] = Quote(ev.order_id, price)

    async def _amend(
        self, bots: PairBots, side: int, level: int, quote: Quote, price: int, who: str
    ) -> None:
        cmd = AmendOrder(account=self.maker, order_id=quote.order_id, limit_price=price)
        for ev in await self._send(cmd, who) or []:
            if isinstance(ev, OrderAmended):
                quote.price = price
            elif isinstance(ev, OrderRejected) and ev.error == UNKNOWN_ORDER:  # filled
                del bots.quotes[(side, level)]
                await self._place(bots, side, level, price, who)

    # ------------------------------------------------------------------ the taker
    async def _run_taker(self, bots: PairBots) -> None:
        """Small market orders (and now and then an IOC limit through the touch) at
        exponential intervals: about 1/4 of `rate` commands a second."""
        who = f"taker {bots.pair.altname}"
        rng = bots.taker_rng
        mean = 1 / (0.25 * self.rate)
        if await self._pause(0.2 + rng.uniform(0, 0.5)):  # the maker's ladder first
            return
        while True:
            await self._top_up_bots()
            await self._send(self._take(bots), who)
            if await self._pause(min(rng.expovariate(1 / mean), 4 * mean)):
                return

    def _take(self, bots: PairBots) -> AddOrder:
        rng = bots.taker_rng
        side = rng.choice((BUY, SELL))
        qty = bots.unit * rng.randint(1, 6)
        if rng.random() < 0.8:
            return AddOrder(
                account=self.taker, pair=bots.pair.id, side=side, qty=qty, ordertype=MARKET
            )
        price = quote_price(bots.pair, bots.mid, SELL if side == BUY else BUY, 1)
        return AddOrder(
            account=self.taker,
            pair=bots.pair.id,
            side=side,
            qty=qty,
            ordertype=LIMIT,
            price=price,
            tif=IOC,
        )


async def start_demo(
    service: ExchangeService,
    keys: KeyStore,
    api_url: str,
    last_trade: Callable[[str], tuple[int, int] | None] | None = None,
    rate: float = DEFAULT_RATE,
) -> tuple[DemoBots, str] | None:
    """Start the demo bots; (the bots, the banner to print), or None (logged) when the
    exchange is not taking commands."""
    bots = DemoBots(service, keys, last_trade, rate)
    try:
        demo = await bots.start()
    except SequencerStopped as exc:
        log.error("demo: not started, the exchange is not taking commands: %s", exc)
        await bots.stop()
        return None
    return bots, banner(demo, api_url, len(service.config.pairs), bots.rate)
