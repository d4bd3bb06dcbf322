"""One market as the engine runs it: its book, mode, last price, trigger orders, promotions."""

from __future__ import annotations

from cambio.engine.book import Book
from cambio.engine.fees import Promotion
from cambio.engine.order import Order
from cambio.model.commands import ONLINE
from cambio.model.config import PairSpec

# How a trade's cost is valued in the fee-volume currency (USD)
USD_NONE = 0  # no USD reference: the trade adds no fee volume
USD_QUOTE = 1  # quoted in USD: the cost is the volume
USD_VIA = 2  # quoted in an asset with a USD market: valued at that market's last price
USD_CROSS = 3  # quoted in Q: valued through an asset B with B/USD and B/Q markets


class Market:
    """Mutable per-pair state. The engine keeps one per configured pair."""

    __slots__ = (
        "book",
        "custom_fees",
        "down",
        "index",
        "last_price",
        "max_fee_ppm",
        "mode",
        "n_triggers",
        "promos",
        "spec",
        "trade_prices",
        "trailing",
        "up",
        "usd_den",
        "usd_kind",
        "usd_scale",
        "usd_via",
    )

    def __init__(self, spec: PairSpec) -> None:
        self.spec = spec
        self.index = spec.index
        self.book = Book()
        self.mode = ONLINE
        self.last_price = 0
        self.up: list[tuple[int, int]] = []  # (trigger, order_id): fire when price >= trigger
        self.down: list[tuple[int, int]] = []  # (-trigger, order_id): fire when price <= it
        self.trailing: dict[int, Order] = {}
        self.n_triggers = 0  # pending trigger orders (heaps hold stale entries too)
        self.trade_prices: list[int] = []  # this command's trade prices, while triggers wait
        self.promos: list[Promotion] = []  # active promotions covering this market's trades
        self.max_fee_ppm = max(t.ppm for t in spec.taker_tiers + spec.maker_tiers)
        self.custom_fees = False
        self.usd_kind = USD_NONE
        self.usd_via = -1  # index of the market pricing the quote asset in USD
        self.usd_den = -1  # for a cross: the market pricing B in the quote asset
        self.usd_scale = 1  # see Exchange._usd_value
