"""The exchange engine: a pure state machine, ``apply(command) -> events``.

No clock, no I/O, no floats, no randomness: time comes from each command's sequenced
``ts``; timers (GTD expiry, dead man's switch, promotion start and end) fire when a
command's time passes them, and ``Tick`` commands make sure time passes without traffic.
A rejected command emits a rejection event with the API's error string and changes
nothing. See docs/architecture.md ("Engine internals") for the design.
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import blake2b
from heapq import heappop, heappush
from typing import Any

import msgspec

from cambio.engine.accounts import Account
from cambio.engine.fees import Promotion, promo_rate, tier_rate
from cambio.engine.market import USD_CROSS, USD_NONE, USD_QUOTE, USD_VIA, Market
from cambio.engine.order import (
    OPEN,
    PENDING,
    TRIGGER_DOWN,
    TRIGGER_UP,
    Order,
    OrderIndex,
    hold_needed,
)
from cambio.model import errors as E
from cambio.model.commands import (
    BUY,
    CANCEL_ONLY,
    FOK,
    GTC,
    GTD,
    ICEBERG,
    IOC,
    LIMIT,
    LIMIT_ONLY,
    MAINTENANCE,
    MARKET,
    MODES,
    ONLINE,
    ORDER_TYPES,
    POST_ONLY,
    PRICE_ABS,
    PRICE_MINUS,
    PRICE_PLUS,
    SCOPE_ALL,
    SCOPE_MARGIN,
    SCOPE_SPOT,
    SELL,
    STAGE_BROADCAST,
    STAGE_QUEUED,
    STAGE_SENT,
    STOP_LOSS,
    STOP_LOSS_LIMIT,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    TAKE_PROFIT,
    TAKE_PROFIT_LIMIT,
    TRAILING_STOP,
    TRAILING_STOP_LIMIT,
    UPGRADE_PHASES,
    AddOrder,
    AmendOrder,
    CancelAll,
    CancelAllAfter,
    CancelOrder,
    Command,
    CompleteWithdrawal,
    CreatePromotion,
    Deposit,
    EndPromotion,
    Halt,
    MarkUpgrade,
    MarkWithdrawalBroadcast,
    RequestWithdrawal,
    Resume,
    ReturnWithdrawal,
    SendWithdrawal,
    SetFunding,
    SetGlobalMode,
    SetMarketMode,
    Tick,
    Transfer,
)
from cambio.model.config import PPM, MarketConfig
from cambio.model.decimals import DecimalFormatError, rescale
from cambio.model.events import (
    CommandRejected,
    DeadManSwitch,
    Deposited,
    Event,
    FeeTierChanged,
    FundingChanged,
    GlobalModeChanged,
    MarketModeChanged,
    OrderAccepted,
    OrderAmended,
    OrderClosed,
    OrderRejected,
    OrderTriggered,
    OrderValidated,
    PromotionChanged,
    Trade,
    Transferred,
    UpgradePhase,
    WithdrawalBroadcast,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalReturned,
    WithdrawalSent,
)
from cambio.model.ledger import FEE_ACCOUNT, TRADE_LEDGER_IDS

DAY_NS = 86_400 * 1_000_000_000
VOLUME_DAYS = 30
MAX_AMOUNT = (1 << 63) - 1  # every stored or emitted integer fits in int64
INF_PRICE = 1 << 62
INF_QTY = 1 << 62
CHAIN_BLOCK = 256  # the event hash chain closes a block every 256 sequence numbers
MAX_DMS_TIMEOUT_S = 86_400
MIN_ICEBERG_FRACTION = 15  # display volume >= 1/15 of the order volume

MODE_RANK = {m: i for i, m in enumerate(MODES)}
_chain_encoder = msgspec.msgpack.Encoder()
TRIGGER_TYPES = frozenset(
    {STOP_LOSS, TAKE_PROFIT, STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT, TRAILING_STOP, TRAILING_STOP_LIMIT}
)
LIMIT_TRIGGER_TYPES = frozenset({STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT, TRAILING_STOP_LIMIT})
TRAILING_TYPES = frozenset({TRAILING_STOP, TRAILING_STOP_LIMIT})
RESTING_TYPES = frozenset({LIMIT, ICEBERG})
STP_TYPES = frozenset({STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH})
TIFS = frozenset({GTC, IOC, GTD, FOK})

# timer kinds, in the order they fire when due at the same time
TIMER_EXPIRY = 0
TIMER_DMS = 1
TIMER_PROMO = 2
TIMER_STAGE = 3  # the next step of a staged reopening
MAX_STAGE_S = 7 * 86_400


class Rejected(Exception):
    """Raised inside a handler to refuse a command; carries the API error string."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Withdrawal(msgspec.Struct, kw_only=True):
    account: int
    asset: int
    amount: int
    fee: int
    ref: str
    address: str = ""
    stage: int = STAGE_QUEUED
    txid: str = ""


def _trigger_dir(ordertype: str, side: int) -> int:
    if ordertype in (STOP_LOSS, STOP_LOSS_LIMIT):
        return TRIGGER_UP if side == BUY else TRIGGER_DOWN
    if ordertype in (TAKE_PROFIT, TAKE_PROFIT_LIMIT):
        return TRIGGER_DOWN if side == BUY else TRIGGER_UP
    # trailing: a buy fires when the price rises back above its trough, a sell the reverse
    return TRIGGER_UP if side == BUY else TRIGGER_DOWN


class Exchange:
    """All markets, accounts and rules of one exchange. Feed it commands in order."""

    def __init__(self, config: MarketConfig) -> None:
        self.config = config
        self.markets = [Market(p) for p in config.pairs]
        self.pair_index: dict[str, int] = {}
        for p in config.pairs:
            for name in (p.id, p.altname, p.wsname, p.symbol):
                self.pair_index[name.upper()] = p.index
        self.asset_index: dict[str, int] = {}
        for a in config.assets:
            for name in (a.id, a.altname, a.symbol):
                self.asset_index[name.upper()] = a.index
        self.maker_tiers = config.pairs[0].maker_tiers if config.pairs else ()
        self.taker_tiers = config.pairs[0].taker_tiers if config.pairs else ()
        self._link_usd_valuation()
        self.accounts: dict[int, Account] = {}
        self.orders = OrderIndex()  # open and pending orders
        self.cl_ord_ids: dict[tuple[int, str], int] = {}  # (account, cl_ord_id) -> order id
        self.withdrawals: dict[str, Withdrawal] = {}  # pending, by ref
        self.funding_refs: set[str] = set()  # every deposit / withdrawal ref ever seen
        self.global_mode = ONLINE
        self.deposits_on = [True] * len(config.assets)
        self.withdrawals_on = [True] * len(config.assets)
        self.supply = [0] * len(config.assets)  # per asset: deposits - withdrawals (derived)
        self.promos: dict[str, Promotion] = {}
        self.timers: list[tuple[int, int, int, str]] = []  # (ts, kind, int key, str key)
        self.stages: list[tuple[int, str]] = []  # a staged reopening's next (ts, mode)
        self.stage_reason = ""
        self.volume_accounts: set[int] = set()
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_ledger_id = 1
        self.next_amend_id = 1
        self.seq = 0
        self.ts = 0
        self.day = -1
        self.day_end = 0  # first ns of the next day (derived from day)
        self.chain_block = bytes(32)
        self.chain_pending: list[tuple[int, list[Event]]] = []  # since the last closed block
        self._out: list[Event] = []
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            Tick: self._tick,
            AddOrder: self._add_order,
            CancelOrder: self._cancel_order,
            AmendOrder: self._amend_order,
            CancelAll: self._cancel_all,
            CancelAllAfter: self._cancel_all_after,
            Deposit: self._deposit,
            RequestWithdrawal: self._request_withdrawal,
            CompleteWithdrawal: self._complete_withdrawal,
            ReturnWithdrawal: self._return_withdrawal,
            SendWithdrawal: self._send_withdrawal,
            MarkWithdrawalBroadcast: self._withdrawal_broadcast,
            Transfer: self._transfer,
            SetMarketMode: self._set_market_mode,
            SetGlobalMode: self._set_global_mode,
            SetFunding: self._set_funding,
            Halt: self._halt,
            Resume: self._resume,
            CreatePromotion: self._create_promo,
            EndPromotion: self._end_promo,
            MarkUpgrade: self._mark_upgrade,
        }
        self._account(FEE_ACCOUNT)

    def _link_usd_valuation(self) -> None:
        usd = self.config.usd_asset
        assets = self.config.assets
        for m in self.markets:
            spec = m.spec
            m.custom_fees = (spec.maker_tiers, spec.taker_tiers) != (
                self.maker_tiers,
                self.taker_tiers,
            )
            if usd < 0:
                continue
            # fee volume = value * 10**usd_scale, in 10**-decimals of the USD asset
            if spec.quote == usd:
                m.usd_kind = USD_QUOTE  # value: the cost
                m.usd_scale = assets[usd].decimals - assets[usd].units
                continue
            for ref in self.markets:
                if ref.spec.base == spec.quote and ref.spec.quote == usd:
                    m.usd_kind = USD_VIA  # value: the cost times the reference market's price
                    m.usd_via = ref.index
                    m.usd_scale = (
                        assets[usd].decimals - assets[spec.quote].units - ref.spec.pair_decimals
                    )
                    break
            else:
                # a cross: quote Q valued through an asset B traded against both USD and Q
                # (EUR through XBT/USD and XBT/EUR): cost * px(B/USD) / px(B/Q)
                for via in self.markets:
                    if via.spec.quote != usd:
                        continue
                    den = next(
                        (
                            d
                            for d in self.markets
                            if d.spec.base == via.spec.base and d.spec.quote == spec.quote
                        ),
                        None,
                    )
                    if den is not None:
                        m.usd_kind = USD_CROSS
                        m.usd_via, m.usd_den = via.index, den.index
                        m.usd_scale = (
                            assets[usd].decimals
                            - assets[spec.quote].units
                            + den.spec.pair_decimals
                            - via.spec.pair_decimals
                        )
                        break

    # ------------------------------------------------------------------ public surface
    def apply(self, cmd: Command) -> list[Event]:
        """Apply one sequenced command; return the events it produced, in order."""
        out: list[Event] = []
        self._out = out
        if cmd.ts > self.ts:
            self.ts = cmd.ts
        self.seq = cmd.seq
        if self.ts >= self.day_end:
            self._roll_day(self.ts // DAY_NS)
        if self.timers and self.timers[0][0] <= self.ts:
            self._fire_timers()
        handler = self._handlers.get(type(cmd))
        if handler is None:
            out.append(CommandRejected(error=E.INVALID_ARGUMENTS))
        else:
            try:
                handler(cmd)
            except Rejected as r:
                # handlers raise before changing anything, so a rejection is clean
                if isinstance(cmd, AddOrder | AmendOrder | CancelOrder | CancelAll):
                    out.append(
                        OrderRejected(
                            account=cmd.account,
                            error=r.error,
                            userref=getattr(cmd, "userref", None),
                            cl_ord_id=getattr(cmd, "cl_ord_id", None),
                            order_id=getattr(cmd, "order_id", 0),
                        )
                    )
                else:
                    out.append(CommandRejected(error=r.error))
        self.chain_pending.append((cmd.seq, out))
        if cmd.seq % CHAIN_BLOCK == 0:
            self.chain_block = self._chain_value()
            self.chain_pending = []
        return out

    def _chain_value(self) -> bytes:
        if not self.chain_pending:
            return self.chain_block
        data = _chain_encoder.encode(self.chain_pending)
        return blake2b(self.chain_block + data, digest_size=32).digest()

    def chain(self) -> str:
        """The event hash chain after the last applied command (hex).

        Defined over sequence numbers, not over how commands were batched: a block closes
        at every multiple of CHAIN_BLOCK with value BLAKE2b-256(previous block value ||
        msgpack([[seq, events], ...] since)); in between, the chain's value is what the
        block would close with now. Encoding once per block keeps it off the hot path."""
        return self._chain_value().hex()

    def snapshot(self) -> bytes:
        """The canonical snapshot (see cambio.engine.snapshot)."""
        from cambio.engine.snapshot import snapshot

        return snapshot(self)

    def state_hash(self) -> str:
        """SHA-256 (hex) of the canonical state document."""
        from cambio.engine.snapshot import state_hash

        return state_hash(self)

    @classmethod
    def restore(cls, config: MarketConfig, data: bytes) -> Exchange:
        """An engine in the state a `snapshot()` recorded."""
        from cambio.engine.snapshot import restore

        return restore(config, data)

    def balance(self, account: int, asset: int) -> tuple[int, int]:
        """(available, held) of an account in an asset, in asset units."""
        a = self.accounts.get(account)
        if a is None:
            return 0, 0
        return a.avail[asset], a.held[asset]

    def order(self, order_id: int) -> Order | None:
        """An open or pending order, or None."""
        return self.orders.get(order_id)

    def market(self, pair: str | int) -> Market:
        """A market by index or by any of its names."""
        if isinstance(pair, int):
            return self.markets[pair]
        return self.markets[self.pair_index[pair.upper()]]

    def mode_of(self, m: Market) -> str:
        """The effective mode of a market: the stricter of its own and the global mode."""
        g = self.global_mode
        return g if MODE_RANK[g] > MODE_RANK[m.mode] else m.mode

    # ------------------------------------------------------------------ helpers
    def _account(self, account_id: int) -> Account:
        a = self.accounts.get(account_id)
        if a is None:
            n = len(self.config.assets)
            a = Account(account_id=account_id, avail=[0] * n, held=[0] * n, orders={})
            a.volume_days = {}
            self._retier(a, emit=False)
            self.accounts[account_id] = a
        return a

    def _retier(self, a: Account, emit: bool = True) -> None:
        maker, _ = tier_rate(self.maker_tiers, a.volume30)
        taker, nxt = tier_rate(self.taker_tiers, a.volume30)
        changed = (maker, taker) != (a.maker_ppm, a.taker_ppm)
        a.maker_ppm, a.taker_ppm, a.next_tier_volume = maker, taker, nxt
        if changed and emit:
            self._out.append(
                FeeTierChanged(
                    account=a.account_id, volume=a.volume30, maker_ppm=maker, taker_ppm=taker
                )
            )

    def _resolve_pair(self, name: str) -> Market:
        idx = self.pair_index.get(name.upper())
        if idx is None:
            raise Rejected(E.UNKNOWN_PAIR)
        return self.markets[idx]

    def _resolve_asset(self, name: str, error: str = E.FUNDING_UNKNOWN_ASSET) -> int:
        idx = self.asset_index.get(name.upper())
        if idx is None:
            raise Rejected(error)
        return idx

    def _usd_value(self, m: Market, cost: int) -> int:
        """A trade's cost as fee volume (10**-decimals of the USD asset); 0 when the
        reference prices needed have not traded yet."""
        kind = m.usd_kind
        if kind == USD_NONE:
            return 0
        v = cost if kind == USD_QUOTE else cost * self.markets[m.usd_via].last_price
        den = 1
        if kind == USD_CROSS:
            den = self.markets[m.usd_den].last_price
            if not den:
                return 0
        s = m.usd_scale
        return v * int(10**s) // den if s >= 0 else v // (den * int(10 ** (-s)))

    def _fee_rates(self, m: Market, a: Account) -> tuple[int, int]:
        if m.custom_fees:
            maker = tier_rate(m.spec.maker_tiers, a.volume30)[0]
            taker = tier_rate(m.spec.taker_tiers, a.volume30)[0]
        else:
            maker, taker = a.maker_ppm, a.taker_ppm
        if m.promos:
            maker = promo_rate(m.promos, a.account_id, maker, True)
            taker = promo_rate(m.promos, a.account_id, taker, False)
        return maker, taker

    def _add_volume(self, a: Account, usd: int) -> None:
        a.volume30 += usd
        d = self.day
        a.volume_days[d] = a.volume_days.get(d, 0) + usd
        self.volume_accounts.add(a.account_id)
        if a.next_tier_volume and a.volume30 >= a.next_tier_volume:
            self._retier(a)

    def _roll_day(self, day: int) -> None:
        self.day = day
        self.day_end = (day + 1) * DAY_NS
        cutoff = day - VOLUME_DAYS + 1
        for aid in sorted(self.volume_accounts):
            a = self.accounts[aid]
            old = [d for d in a.volume_days if d < cutoff]
            if not old:
                continue
            for d in old:
                a.volume30 -= a.volume_days.pop(d)
            if not a.volume_days:
                self.volume_accounts.discard(aid)
            self._retier(a)

    def _hold_asset(self, m: Market, o: Order) -> int:
        return m.spec.quote if o.side == BUY else m.spec.base

    def _hold_for(self, m: Market, o: Order, price: int, qty: int) -> int:
        s = m.spec
        return hold_needed(
            o.side, o.fee_in_base, price, qty, s.base_per_lot, s.quote_per_pq, m.max_fee_ppm
        )

    def _close(self, o: Order, status: str, reason: str) -> None:
        """Retire an order that is out of every book: release its hold, say why."""
        a = self.accounts[o.account]
        if o.hold:
            asset = self._hold_asset(self.markets[o.pair], o)
            a.held[asset] -= o.hold
            a.avail[asset] += o.hold
            o.hold = 0
        self.orders.pop(o.order_id)
        a.orders.pop(o.order_id, None)
        if o.cl_ord_id is not None:
            self.cl_ord_ids.pop((o.account, o.cl_ord_id), None)
        self._out.append(OrderClosed(o.order_id, o.account, status, reason, o.filled))

    def _unbook(self, o: Order) -> None:
        """Take an open or pending order out of its book or trigger book."""
        m = self.markets[o.pair]
        if o.status == PENDING:
            m.n_triggers -= 1
            m.trailing.pop(o.order_id, None)  # heap entries go stale and are skipped
        else:
            m.book.remove(o)

    def _cancel(self, o: Order, status: str, reason: str) -> None:
        self._unbook(o)
        self._close(o, status, reason)

    # ------------------------------------------------------------------ timers
    def _push_timer(self, ts: int, kind: int, key: int, skey: str = "") -> None:
        heappush(self.timers, (ts, kind, key, skey))

    def _fire_timers(self) -> None:
        timers = self.timers
        while timers and timers[0][0] <= self.ts:
            ts, kind, key, skey = heappop(timers)
            if kind == TIMER_EXPIRY:
                o = self.orders.get(key)
                if o is not None and o.expire_ts == ts:
                    self._cancel(o, "expired", E.REASON_EXPIRED)
            elif kind == TIMER_DMS:
                a = self.accounts.get(key)
                if a is not None and a.dms_ts == ts:
                    self._fire_dms(a)
            elif kind == TIMER_STAGE:
                if self.stages and self.stages[0] == (ts, skey):
                    self.stages.pop(0)
                    self._global_mode(skey, "staged reopening: " + self.stage_reason)
            else:
                self._refresh_promos()

    def _fire_dms(self, a: Account) -> None:
        """The dead man's switch is due: cancel the account's orders. Orders in markets under
        maintenance cannot be cancelled now; the switch then stays armed (overdue) and
        finishes the job when their market leaves maintenance. Emits nothing if nothing
        changes, so re-checking an overdue switch is harmless."""
        if not self._cancel_account_orders(a, E.REASON_DMS):
            a.dms_ts = 0
            self._out.append(DeadManSwitch(account=a.account_id, trigger_ts=0))

    def _fire_overdue_dms(self) -> None:
        """After a market leaves maintenance: finish overdue dead man's switches."""
        for aid in sorted(self.accounts):
            a = self.accounts[aid]
            if 0 < a.dms_ts <= self.ts:
                self._fire_dms(a)

    def _tick(self, cmd: Tick) -> None:
        """Time has passed; timers already fired in apply()."""

    # ------------------------------------------------------------------ orders: entry
    def _price(
        self, m: Market, value: int, dp: int, kind: int, pct: bool, direction: int, name: str
    ) -> int:
        """An absolute price from a command's price field (see AddOrder)."""
        spec = m.spec
        if pct:
            if value < 0 or kind == PRICE_ABS:
                raise Rejected(E.INVALID_PRICE_ARG)
        elif dp >= 0:
            value = self._price_units(m, value, dp, name)
        if value > MAX_AMOUNT:
            raise Rejected(E.INVALID_PRICE_ARG)
        if kind == PRICE_ABS:
            if value <= 0:
                raise Rejected(E.INVALID_PRICE_ARG)
            if value % spec.tick:
                raise Rejected(E.TICK_SIZE)
            return value
        ref = m.last_price
        if ref <= 0 or value < 0:
            raise Rejected(E.INVALID_PRICE_ARG)
        offset = ref * value // PPM if pct else value
        sign = 1 if kind == PRICE_PLUS else -1 if kind == PRICE_MINUS else direction
        price = ref + sign * offset
        price -= price % spec.tick
        if price <= 0:
            raise Rejected(E.INVALID_PRICE_ARG)
        return price

    @staticmethod
    def _price_units(m: Market, value: int, dp: int, name: str) -> int:
        """A price given with `dp` decimals, in price units; refuses excess precision."""
        try:
            return rescale(value, dp, m.spec.pair_decimals)
        except DecimalFormatError:
            raise Rejected(E.invalid_price_decimals(name, m.spec.pair_decimals)) from None

    def _offset(self, m: Market, value: int, dp: int, pct: bool, name: str) -> int:
        if pct:
            if value <= 0 or value >= PPM:
                raise Rejected(E.INVALID_PRICE_ARG)
            return value
        if dp >= 0:
            value = self._price_units(m, value, dp, name)
        if value <= 0:
            raise Rejected(E.INVALID_PRICE_ARG)
        return value

    def _check_mode_for_order(self, m: Market, cmd: AddOrder) -> None:
        mode = self.mode_of(m)
        if mode == ONLINE:
            return
        if mode == MAINTENANCE:
            raise Rejected(E.UNAVAILABLE)
        if mode == CANCEL_ONLY:
            raise Rejected(E.CANCEL_ONLY)
        if mode == POST_ONLY:
            if cmd.ordertype not in RESTING_TYPES or not cmd.post_only:
                raise Rejected(E.POST_ONLY_MODE)
        elif mode == LIMIT_ONLY and cmd.ordertype not in RESTING_TYPES:
            raise Rejected(E.LIMIT_ONLY_MODE)

    def _band_limit(self, m: Market, side: int) -> int:
        """Market-price protection: the worst price a market order may reach (0: no book)."""
        spec = m.spec
        if side == BUY:
            touch = m.book.best_ask()
            if not touch:
                return 0
            lim = touch + touch * spec.mpp_band_ppm // PPM
            return lim - lim % spec.tick
        touch = m.book.best_bid()
        if not touch:
            return 0
        lim = touch - touch * spec.mpp_band_ppm // PPM
        return max(spec.tick, -(-lim // spec.tick) * spec.tick)

    def _add_order(self, cmd: AddOrder) -> None:
        idx = self.pair_index.get(cmd.pair)
        m = self.markets[idx] if idx is not None else self._resolve_pair(cmd.pair)
        spec = m.spec
        ot = cmd.ordertype
        side = cmd.side
        account = cmd.account
        tif = cmd.tif
        if tif not in TIFS:
            tif = tif.upper()
        if (
            account <= FEE_ACCOUNT
            or ot not in ORDER_TYPES
            or tif not in TIFS
            or cmd.stp not in STP_TYPES
            or (cmd.userref is not None and cmd.cl_ord_id is not None)
        ):
            raise Rejected(E.INVALID_ARGUMENTS)
        if side != BUY and side != SELL:
            raise Rejected(E.INVALID_ARGUMENTS + ":type")
        if m.mode is not ONLINE or self.global_mode is not ONLINE:
            self._check_mode_for_order(m, cmd)
        if (
            cmd.cl_ord_id is not None
            or cmd.post_only
            or cmd.quote_qty
            or cmd.expire_ts
            or (tif != GTC and tif != IOC)
        ):
            self._check_order_flags(cmd, ot, tif)

        qty = cmd.qty
        if cmd.qty_dp >= 0:
            try:
                dp = self.config.assets[spec.quote].units if cmd.quote_qty else spec.lot_decimals
                qty = rescale(qty, cmd.qty_dp, dp)
            except DecimalFormatError:
                raise Rejected(E.INVALID_VOLUME) from None
        if not 0 < qty <= MAX_AMOUNT:
            raise Rejected(E.INVALID_VOLUME)
        if qty < spec.ordermin and not cmd.quote_qty:
            raise Rejected(E.VOLUME_MINIMUM)

        # passive direction for "#" prices: buys below the market, sells above
        passive = -1 if side == BUY else 1
        price = limit = trigger = 0
        if ot in (LIMIT, ICEBERG):
            price = cmd.price
            if cmd.price_dp >= 0 or cmd.price_kind or cmd.price_pct or price > MAX_AMOUNT:
                price = self._price(
                    m, price, cmd.price_dp, cmd.price_kind, cmd.price_pct, passive, cmd.pair
                )
            elif price <= 0:
                raise Rejected(E.INVALID_PRICE_ARG)
            elif price % spec.tick:
                raise Rejected(E.TICK_SIZE)
        o = Order(
            self.next_order_id, account, m.index, side, ot, price, qty, qty, tif, cmd.stp,
            self.ts, cmd.fee_in_base, cmd.post_only, cmd.userref, cmd.cl_ord_id, cmd.expire_ts,
        )  # fmt: skip
        if ot in TRIGGER_TYPES:
            self._trigger_fields(m, o, cmd, passive)
            trigger, limit = o.trigger, o.limit
        if ot == ICEBERG:
            d = cmd.display_qty
            if d <= 0 or d > qty or d * MIN_ICEBERG_FRACTION < qty or d < spec.ordermin:
                raise Rejected(E.INVALID_DISPLAYVOL)
            o.display = o.shown = d
        elif cmd.display_qty:
            raise Rejected(E.INVALID_DISPLAYVOL)

        # costmin: judged at the price the order names (limit, trigger) or at the touch
        ref_price = price or limit or trigger
        if not ref_price and ot == MARKET:
            ref_price = m.book.best_ask() if side == BUY else m.book.best_bid()
        if ref_price and ref_price * qty * spec.quote_per_pq < spec.costmin and not cmd.quote_qty:
            raise Rejected(E.COST_MINIMUM)

        a = self.accounts.get(account)
        if a is None:  # never funded: nothing to trade with (and no account to create)
            raise Rejected(E.INSUFFICIENT_FUNDS)
        hold_asset = spec.quote if side == BUY else spec.base
        if ot == MARKET:
            if side == BUY and (cmd.no_mpp or cmd.quote_qty):
                o.budget = True
                o.price = INF_PRICE
                if cmd.quote_qty:
                    hold = qty + qty * m.max_fee_ppm // PPM
                    o.qty = o.orig_qty = INF_QTY
                else:
                    hold = a.avail[hold_asset]
            else:
                o.price = self._band_limit(m, side) if not cmd.no_mpp else 1
                hold = self._hold_for(m, o, o.price, qty)
        elif trigger:
            hold = self._hold_for(m, o, self._trigger_hold_price(m, o, trigger, limit), qty)
        else:
            hold = self._hold_for(m, o, price, qty)
        if hold > a.avail[hold_asset] or (o.budget and hold <= 0):
            raise Rejected(E.INSUFFICIENT_FUNDS)
        if cmd.validate:
            self._out.append(OrderValidated(account))
            return

        # accepted: from here on the order exists and every outcome is an event
        oid = o.order_id
        self.next_order_id = oid + 1
        a.avail[hold_asset] -= hold
        a.held[hold_asset] += hold
        o.hold = hold
        self.orders[oid] = o
        if o.cl_ord_id is not None:
            self.cl_ord_ids[(account, o.cl_ord_id)] = oid
        if trigger:
            o.status = PENDING
        self._out.append(
            OrderAccepted(
                oid, account, m.index, side, ot, qty, price or trigger, limit, o.display, tif,
                o.expire_ts, o.post_only, o.fee_in_base, o.stp, o.userref, o.cl_ord_id, o.status,
            )
        )  # fmt: skip
        if tif == GTD:
            self._push_timer(o.expire_ts, TIMER_EXPIRY, oid)
        if trigger:
            a.orders[oid] = o
            if self._triggered_now(m, o):
                self._fire(m, o, m.last_price)
            else:
                self._arm_trigger(m, o)
        else:
            self._execute(m, o, a)
        if m.trade_prices:
            self._run_triggers(m)

    def _check_order_flags(self, cmd: AddOrder, ot: str, tif: str) -> None:
        """The checks that only orders with client ids, flags or a special time in force need."""
        if cmd.cl_ord_id is not None and (cmd.account, cmd.cl_ord_id) in self.cl_ord_ids:
            raise Rejected(E.INVALID_ARGUMENTS + ":cl_ord_id")
        if cmd.post_only and (ot not in RESTING_TYPES or tif in (IOC, FOK)):
            raise Rejected(E.INVALID_ARGUMENTS + ":oflags")
        if cmd.quote_qty and (ot != MARKET or cmd.side != BUY):
            raise Rejected(E.INVALID_ARGUMENTS + ":viqc")
        if tif == FOK and ot != LIMIT:  # FOK is for limit-price orders (reference §4.2)
            raise Rejected(E.INVALID_ARGUMENTS + ":timeinforce")
        if tif == GTD:
            if cmd.expire_ts <= self.ts:
                raise Rejected(E.INVALID_EXPIRETM)
        elif cmd.expire_ts:
            raise Rejected(E.INVALID_EXPIRETM)

    def _trigger_fields(self, m: Market, o: Order, cmd: AddOrder, passive: int) -> None:
        """Resolve the trigger (and limit) of a stop, take-profit or trailing order."""
        spec = m.spec
        ot, side = o.ordertype, o.side
        o.trigger_dir = _trigger_dir(ot, side)
        if ot in TRAILING_TYPES:
            if cmd.price_kind != PRICE_PLUS:
                raise Rejected(E.INVALID_PRICE_ARG)
            o.trail = self._offset(m, cmd.price, cmd.price_dp, cmd.price_pct, cmd.pair)
            o.trail_pct = cmd.price_pct
            if m.last_price <= 0:
                raise Rejected(E.INVALID_PRICE_ARG)
            o.extreme = m.last_price
            o.trigger = self._trail_trigger(
                m.last_price, o.trail, o.trail_pct, o.trigger_dir, spec.tick
            )
            if ot == TRAILING_STOP_LIMIT:
                if cmd.price2_kind not in (PRICE_PLUS, PRICE_MINUS):
                    raise Rejected(E.INVALID_ARGUMENTS + ":price2")
                off = self._offset(m, cmd.price2, cmd.price2_dp, cmd.price2_pct, cmd.pair)
                o.limit_offset = -off if cmd.price2_kind == PRICE_MINUS else off
                o.limit_offset_pct = cmd.price2_pct
            return
        stop_dir = 1 if o.trigger_dir == TRIGGER_UP else -1
        o.trigger = self._price(
            m, cmd.price, cmd.price_dp, cmd.price_kind, cmd.price_pct, stop_dir, cmd.pair
        )
        if ot in LIMIT_TRIGGER_TYPES:
            o.limit = self._price(
                m, cmd.price2, cmd.price2_dp, cmd.price2_kind, cmd.price2_pct, passive, cmd.pair
            )

    def _trigger_hold_price(self, m: Market, o: Order, trigger: int, limit: int) -> int:
        """The price a buy trigger order holds funds for until it fires (then re-held), for
        a trigger and limit that may be about to replace the order's own (amend)."""
        if limit:
            return limit
        if o.ordertype == TRAILING_STOP_LIMIT:
            off = trigger * o.limit_offset // PPM if o.limit_offset_pct else o.limit_offset
            return max(trigger, trigger + off)
        return trigger + trigger * m.spec.mpp_band_ppm // PPM

    @staticmethod
    def _trail_trigger(extreme: int, trail: int, pct: bool, direction: int, tick: int) -> int:
        off = extreme * trail // PPM if pct else trail
        t = extreme + off if direction == TRIGGER_UP else extreme - off
        return max(tick, t - t % tick)

    # ------------------------------------------------------------------ orders: execution
    def _execute(self, m: Market, o: Order, a: Account) -> None:
        """Run an open order against the book, then rest or close what is left."""
        book = m.book
        if o.side == BUY:
            opp = book.ask_heap
            crosses = bool(opp) and opp[0] <= o.price
        else:
            opp = book.bid_heap
            crosses = bool(opp) and -opp[0] >= o.price
        if crosses and o.post_only:
            self._close(o, "canceled", E.REASON_POST_ONLY)
            return
        reason = ""
        if crosses and self.mode_of(m) in (ONLINE, LIMIT_ONLY):
            if o.tif == FOK and not self._fok_fillable(m, o):
                self._close(o, "canceled", E.REASON_FOK)
                return
            reason = self._match(m, o, a)
        elif o.tif == FOK:
            self._close(o, "canceled", E.REASON_FOK)
            return
        if o.qty == 0:
            self._close(o, "closed", "")
        elif reason:
            self._close(o, "canceled", reason)
        elif o.ordertype in RESTING_TYPES or o.limit:
            if o.tif == IOC or o.tif == FOK:
                self._close(o, "canceled", E.REASON_IOC)
            else:
                if o.display:  # what a partial fill on entry left visible
                    o.shown = min(o.shown, o.qty)
                book.rest(o)
                a.orders[o.order_id] = o
        elif o.budget and o.orig_qty == INF_QTY:
            # a quote-volume market buy: done when its budget is spent or the book is
            self._close(
                o, "closed" if o.filled else "canceled", "" if o.filled else E.REASON_NO_LIQUIDITY
            )
        else:
            # market execution stopped by an empty book or by price protection
            self._close(o, "canceled", E.REASON_MPP if opp else E.REASON_NO_LIQUIDITY)

    def _fok_fillable(self, m: Market, o: Order) -> bool:
        opposite = SELL if o.side == BUY else BUY
        stop_at_own = o.stp != STP_CANCEL_OLDEST
        return m.book.fillable(opposite, o.price, o.account, stop_at_own, o.qty)

    def _match(self, m: Market, t: Order, ta: Account) -> str:
        """Match taker `t` against the opposite side up to its limit price.

        Returns a reason to cancel the taker's remainder ("" if none)."""
        book = m.book
        spec = m.spec
        is_buy = t.side == BUY
        if is_buy:
            levels, heap, sign = book.asks, book.ask_heap, 1
        else:
            levels, heap, sign = book.bids, book.bid_heap, -1
        limit = t.price
        accounts = self.accounts
        orders = self.orders
        out = self._out
        fee_acct = accounts[FEE_ACCOUNT]
        qpq = spec.quote_per_pq
        bpl = spec.base_per_lot
        base, quote = spec.base, spec.quote
        pair = m.index
        _, taker_ppm = self._fee_rates(m, ta)
        taker_id = t.order_id
        taker_acct = t.account
        taker_side = t.side
        maxfee = m.max_fee_ppm
        track_prices = m.n_triggers > 0
        usd_kind = m.usd_kind
        while heap and t.qty:
            p = heap[0] * sign
            if (p > limit) if is_buy else (p < limit):
                break
            lvl = levels[p]
            while True:
                o = lvl[0]
                oq = o.qty
                if oq == 0:
                    lvl.popleft()
                    continue
                if o.account == taker_acct:
                    stp = t.stp
                    if stp == STP_CANCEL_NEWEST:
                        return E.REASON_STP
                    emptied = lvl.n == 1
                    self._cancel(o, "canceled", E.REASON_STP)
                    if stp == STP_CANCEL_BOTH:
                        return E.REASON_STP
                    if emptied:
                        break
                    continue
                shown = o.shown if o.display else oq
                q = shown if shown < t.qty else t.qty
                if t.budget:
                    q = self._affordable(t, p, q, qpq, taker_ppm)
                    if q == 0:
                        # a quote-volume order has simply spent its budget
                        return "" if t.orig_qty == INF_QTY else E.REASON_FUNDS
                cost = p * q * qpq
                base_amt = q * bpl
                ma = accounts[o.account]
                maker_ppm = ma.maker_ppm
                if m.custom_fees or m.promos:
                    maker_ppm = self._fee_rates(m, ma)[0]
                # maker side
                mfee = base_amt * maker_ppm // PPM if o.fee_in_base else cost * maker_ppm // PPM
                rem = oq - q
                if is_buy:
                    # maker sells
                    if o.fee_in_base:
                        spend = base_amt + mfee
                        new_hold = rem * bpl
                        new_hold += new_hold * maxfee // PPM
                        ma.held[base] -= o.hold - new_hold
                        ma.avail[base] += o.hold - new_hold - spend
                        ma.avail[quote] += cost
                        fee_acct.avail[base] += mfee
                    else:
                        ma.held[base] -= base_amt
                        new_hold = o.hold - base_amt
                        ma.avail[quote] += cost - mfee
                        fee_acct.avail[quote] += mfee
                else:
                    # maker buys
                    c = p * rem * qpq
                    if o.fee_in_base:
                        new_hold = c
                        ma.held[quote] -= o.hold - new_hold
                        ma.avail[quote] += o.hold - new_hold - cost
                        ma.avail[base] += base_amt - mfee
                        fee_acct.avail[base] += mfee
                    else:
                        new_hold = c + c * maxfee // PPM
                        ma.held[quote] -= o.hold - new_hold
                        ma.avail[quote] += o.hold - new_hold - cost - mfee
                        ma.avail[base] += base_amt
                        fee_acct.avail[quote] += mfee
                o.hold = new_hold
                # taker side
                tfee = base_amt * taker_ppm // PPM if t.fee_in_base else cost * taker_ppm // PPM
                trem = t.qty - q
                if is_buy:
                    if t.budget:
                        spend = cost if t.fee_in_base else cost + tfee
                        ta.held[quote] -= spend
                        t.hold -= spend
                    else:
                        c = t.price * trem * qpq
                        new_hold = c if t.fee_in_base else c + c * maxfee // PPM
                        ta.held[quote] -= t.hold - new_hold
                        ta.avail[quote] += (
                            t.hold - new_hold - (cost if t.fee_in_base else cost + tfee)
                        )
                        t.hold = new_hold
                    if t.fee_in_base:
                        ta.avail[base] += base_amt - tfee
                        fee_acct.avail[base] += tfee
                    else:
                        ta.avail[base] += base_amt
                        fee_acct.avail[quote] += tfee
                else:
                    if t.fee_in_base:
                        new_hold = trem * bpl
                        new_hold += new_hold * maxfee // PPM
                        ta.held[base] -= t.hold - new_hold
                        ta.avail[base] += t.hold - new_hold - base_amt - tfee
                        ta.avail[quote] += cost
                        fee_acct.avail[base] += tfee
                    else:
                        ta.held[base] -= base_amt
                        new_hold = t.hold - base_amt
                        ta.avail[quote] += cost - tfee
                        fee_acct.avail[quote] += tfee
                    t.hold = new_hold
                lid = self.next_ledger_id
                self.next_ledger_id = lid + TRADE_LEDGER_IDS
                tid = self.next_trade_id
                self.next_trade_id = tid + 1
                out.append(
                    Trade(
                        tid,
                        lid,
                        pair,
                        p,
                        q,
                        cost,
                        taker_side,
                        o.order_id,
                        o.account,
                        taker_id,
                        taker_acct,
                        mfee,
                        tfee,
                        o.fee_in_base,
                        t.fee_in_base,
                    )
                )
                m.last_price = p
                if track_prices:
                    m.trade_prices.append(p)
                if usd_kind:
                    usd = self._usd_value(m, cost)
                    if usd:
                        self._add_volume(ma, usd)
                        self._add_volume(ta, usd)
                t.qty = trem
                t.filled += q
                o.filled += q
                o.qty = rem
                if rem == 0:
                    lvl.popleft()
                    orders.pop(o.order_id)
                    del ma.orders[o.order_id]
                    if o.hold:
                        a_hold = quote if not is_buy else base
                        ma.held[a_hold] -= o.hold
                        ma.avail[a_hold] += o.hold
                        o.hold = 0
                    if o.cl_ord_id is not None:
                        self.cl_ord_ids.pop((o.account, o.cl_ord_id), None)
                    out.append(OrderClosed(o.order_id, o.account, "closed", "", o.filled))
                    n = lvl.n - 1
                    if n == 0:
                        book.drop_level(1 - taker_side, p)
                        break
                    lvl.n = n
                elif o.display:
                    o.shown -= q
                    if o.shown == 0:
                        # iceberg refill: a fresh slice joins the back of the queue
                        o.shown = min(o.display, rem)
                        lvl.popleft()
                        lvl.append(o)
                if t.qty == 0:
                    return ""
        return ""

    def _affordable(self, t: Order, p: int, q: int, qpq: int, taker_ppm: int) -> int:
        """For a budget order: the lots (<= q) its remaining budget pays for at price p."""
        unit = p * qpq
        per = unit if t.fee_in_base else unit + unit * taker_ppm // PPM
        n = min(q, t.hold // per) if per else q
        while n > 0:
            c = unit * n
            if (c if t.fee_in_base else c + c * taker_ppm // PPM) <= t.hold:
                return n
            n -= 1
        return 0

    # ------------------------------------------------------------------ triggers
    def _triggered_now(self, m: Market, o: Order) -> bool:
        last = m.last_price
        if not last or self.mode_of(m) not in (ONLINE, LIMIT_ONLY):
            return False
        if o.trigger_dir == TRIGGER_UP:
            return last >= o.trigger
        return last <= o.trigger

    def _arm_trigger(self, m: Market, o: Order) -> None:
        m.n_triggers += 1
        if o.ordertype in TRAILING_TYPES:
            m.trailing[o.order_id] = o
        elif o.trigger_dir == TRIGGER_UP:
            heappush(m.up, (o.trigger, o.order_id))
        else:
            heappush(m.down, (-o.trigger, o.order_id))

    def _run_triggers(self, m: Market) -> None:
        """Fire the trigger orders the command's trades reached, then what those reach."""
        orders = self.orders
        while m.trade_prices:
            prices = m.trade_prices
            m.trade_prices = []
            if not m.n_triggers:
                break
            fired: list[tuple[Order, int]] = []
            for p in prices:
                up, down = m.up, m.down
                while up and up[0][0] <= p:
                    trig, oid = heappop(up)
                    o = orders.get(oid)
                    if o is not None and o.status == PENDING and o.trigger == trig:
                        fired.append((o, p))
                while down and -down[0][0] >= p:
                    trig, oid = heappop(down)
                    o = orders.get(oid)
                    if o is not None and o.status == PENDING and o.trigger == -trig:
                        fired.append((o, p))
                for o in list(m.trailing.values()):
                    tick = m.spec.tick
                    if o.trigger_dir == TRIGGER_DOWN:
                        if p > o.extreme:
                            o.extreme = p
                            o.trigger = self._trail_trigger(
                                p, o.trail, o.trail_pct, TRIGGER_DOWN, tick
                            )
                        if p <= o.trigger:
                            del m.trailing[o.order_id]
                            fired.append((o, p))
                    else:
                        if p < o.extreme:
                            o.extreme = p
                            o.trigger = self._trail_trigger(
                                p, o.trail, o.trail_pct, TRIGGER_UP, tick
                            )
                        if p >= o.trigger:
                            del m.trailing[o.order_id]
                            fired.append((o, p))
            for o, p in fired:
                if o.status == PENDING and o.order_id in orders:
                    m.n_triggers -= 1
                    m.trailing.pop(o.order_id, None)
                    self._fire(m, o, p)

    def _fire(self, m: Market, o: Order, price: int) -> None:
        """Turn a pending trigger order into a live one and execute it."""
        o.status = OPEN
        spec = m.spec
        a = self.accounts[o.account]
        if o.ordertype == TRAILING_STOP_LIMIT:
            off = o.trigger * o.limit_offset // PPM if o.limit_offset_pct else o.limit_offset
            lim = o.trigger + off
            o.limit = max(spec.tick, lim - lim % spec.tick)
        if o.ordertype in LIMIT_TRIGGER_TYPES:
            o.price = o.limit
        else:
            o.price = self._band_limit(m, o.side)
        self._out.append(
            OrderTriggered(
                order_id=o.order_id, account=o.account, trigger_price=price, limit_price=o.limit
            )
        )
        a.orders.pop(o.order_id, None)
        # re-hold for the price the order can now reach
        need = self._hold_for(m, o, o.price, o.qty) if o.price else 0
        asset = self._hold_asset(m, o)
        if o.side == BUY and need != o.hold:
            if need - o.hold > a.avail[asset]:
                self._close(o, "canceled", E.REASON_FUNDS)
                return
            a.avail[asset] -= need - o.hold
            a.held[asset] += need - o.hold
            o.hold = need
        self._execute(m, o, a)

    # ------------------------------------------------------------------ orders: changes
    def _find_order(self, account: int, order_id: int, cl_ord_id: str | None) -> Order:
        if cl_ord_id is not None:
            order_id = self.cl_ord_ids.get((account, cl_ord_id), 0)
        o = self.orders.get(order_id)
        if o is None or o.account != account:
            raise Rejected(E.UNKNOWN_ORDER)
        return o

    def _cancel_order(self, cmd: CancelOrder) -> None:
        if cmd.userref is not None and not cmd.order_id and cmd.cl_ord_id is None:
            a = self.accounts.get(cmd.account)
            targets = [o for o in a.orders.values() if o.userref == cmd.userref] if a else []
            for o in targets:
                if self.mode_of(self.markets[o.pair]) == MAINTENANCE:
                    raise Rejected(E.UNAVAILABLE)
            for o in sorted(targets, key=lambda x: x.order_id):
                self._cancel(o, "canceled", E.REASON_USER)
            return
        o = self._find_order(cmd.account, cmd.order_id, cmd.cl_ord_id)
        if self.mode_of(self.markets[o.pair]) == MAINTENANCE:
            raise Rejected(E.UNAVAILABLE)
        self._cancel(o, "canceled", E.REASON_USER)

    def _cancel_all(self, cmd: CancelAll) -> None:
        if self.global_mode == MAINTENANCE:
            raise Rejected(E.UNAVAILABLE)
        a = self.accounts.get(cmd.account)
        if a is None:
            return
        self._cancel_account_orders(a, E.REASON_USER)

    def _cancel_account_orders(self, a: Account, reason: str) -> bool:
        """Cancel the account's orders, oldest first, except in markets under maintenance
        (which keep theirs); True if any order had to stay for that reason."""
        kept = False
        for o in sorted(a.orders.values(), key=lambda x: x.order_id):
            if self.mode_of(self.markets[o.pair]) == MAINTENANCE:
                kept = True
            else:
                self._cancel(o, "canceled", reason)
        return kept

    def _cancel_all_after(self, cmd: CancelAllAfter) -> None:
        if cmd.account <= FEE_ACCOUNT or not 0 <= cmd.timeout_s < MAX_DMS_TIMEOUT_S:
            raise Rejected(E.INVALID_ARGUMENTS + ":timeout")
        a = self._account(cmd.account)
        if cmd.timeout_s == 0:
            a.dms_ts = 0
        else:
            a.dms_ts = self.ts + cmd.timeout_s * 1_000_000_000
            self._push_timer(a.dms_ts, TIMER_DMS, cmd.account)
        self._out.append(DeadManSwitch(account=cmd.account, trigger_ts=a.dms_ts))

    def _amend_order(self, cmd: AmendOrder) -> None:
        o = self._find_order(cmd.account, cmd.order_id, cmd.cl_ord_id)
        m = self.markets[o.pair]
        spec = m.spec
        mode = self.mode_of(m)
        if mode == MAINTENANCE:
            raise Rejected(E.UNAVAILABLE)
        if mode == CANCEL_ONLY:
            raise Rejected(E.CANCEL_ONLY)
        post_only = cmd.post_only or o.post_only or mode == POST_ONLY
        pending = o.status == PENDING
        new_total = cmd.order_qty or o.filled + o.qty
        if new_total < 0 or cmd.display_qty < 0 or cmd.limit_price < 0 or cmd.trigger_price < 0:
            raise Rejected(E.INVALID_ARGUMENTS)
        new_rem = new_total - o.filled
        if new_rem > 0 and new_total < spec.ordermin:
            raise Rejected(E.VOLUME_MINIMUM)
        price, trigger, limit = o.price, o.trigger, o.limit
        if cmd.limit_price:
            if cmd.limit_price % spec.tick:
                raise Rejected(E.TICK_SIZE)
            if o.ordertype in RESTING_TYPES:
                price = cmd.limit_price
            elif o.ordertype in LIMIT_TRIGGER_TYPES and o.ordertype != TRAILING_STOP_LIMIT:
                if not pending:
                    price = cmd.limit_price
                limit = cmd.limit_price
            else:
                raise Rejected(E.INVALID_ARGUMENTS + ":limit_price")
        if cmd.trigger_price:
            if not pending or o.ordertype in TRAILING_TYPES:
                raise Rejected(E.INVALID_ARGUMENTS + ":trigger_price")
            if cmd.trigger_price % spec.tick:
                raise Rejected(E.TICK_SIZE)
            trigger = cmd.trigger_price
        display = o.display
        if cmd.display_qty:
            if not o.display:
                raise Rejected(E.INVALID_DISPLAYVOL)
            display = cmd.display_qty
        if (
            o.display
            and new_rem > 0
            and (display * MIN_ICEBERG_FRACTION < new_total or display < spec.ordermin)
        ):
            raise Rejected(E.INVALID_DISPLAYVOL)
        if new_rem > 0 and not pending and post_only and price != o.price:
            touch = m.book.best_ask() if o.side == BUY else m.book.best_bid()
            if touch and (price >= touch if o.side == BUY else price <= touch):
                raise Rejected(E.POST_ONLY_AMEND)
        a = self.accounts[o.account]
        asset = self._hold_asset(m, o)
        if new_rem > 0:
            hold_price = self._trigger_hold_price(m, o, trigger, limit) if pending else price
            need = self._hold_for(m, o, hold_price, new_rem)
            if need - o.hold > a.avail[asset]:
                raise Rejected(E.INSUFFICIENT_FUNDS)
        amend_id = self.next_amend_id
        self.next_amend_id += 1
        keep = (
            not pending
            and new_rem > 0
            and price == o.price
            and new_rem <= o.qty
            and display <= o.display
        )
        self._out.append(
            OrderAmended(
                order_id=o.order_id,
                account=o.account,
                amend_id=amend_id,
                qty=new_total,
                display_qty=display,
                price=price if not pending else limit,
                trigger_price=trigger if pending else 0,
                priority_kept=keep or pending,
            )
        )
        if new_rem <= 0:
            self._cancel(o, "canceled", E.REASON_AMEND)
            return
        a.avail[asset] -= need - o.hold
        a.held[asset] += need - o.hold
        o.hold = need
        if pending:
            o.qty = new_rem
            o.limit = limit
            if trigger != o.trigger:
                o.trigger = trigger
                m.n_triggers -= 1
                self._arm_trigger(m, o)
                if self._triggered_now(m, o):
                    m.n_triggers -= 1
                    self._fire(m, o, m.last_price)
            return
        if keep:
            o.qty = new_rem
            if o.display:
                o.display = display
                o.shown = min(o.shown, display, new_rem)
            return
        # priority lost: the order re-enters as a new arrival (a fresh object, since the
        # old level may still reference the old one until it is compacted)
        hold = o.hold
        o.hold = 0
        m.book.remove(o)
        n = msgspec.structs.replace(
            o,
            price=price,
            qty=new_rem,
            display=display,
            shown=min(display, new_rem),
            hold=hold,
            amends=o.amends + 1,
        )
        self.orders[n.order_id] = n
        del a.orders[n.order_id]
        self._execute(m, n, a)
        if m.trade_prices:
            self._run_triggers(m)

    # ------------------------------------------------------------------ funding
    def _deposit(self, cmd: Deposit) -> None:
        asset = self._resolve_asset(cmd.asset)
        if cmd.account <= FEE_ACCOUNT or cmd.amount <= 0:
            raise Rejected(E.FUNDING_INVALID_AMOUNT)
        if not self.deposits_on[asset]:
            raise Rejected(E.FUNDING_DISABLED)
        if self.supply[asset] + cmd.amount > MAX_AMOUNT:
            raise Rejected(E.FUNDING_INVALID_AMOUNT)
        if cmd.ref:
            if cmd.ref in self.funding_refs:
                raise Rejected(E.FUNDING_INVALID_REF)
            self.funding_refs.add(cmd.ref)
        a = self._account(cmd.account)
        a.avail[asset] += cmd.amount
        self.supply[asset] += cmd.amount
        lid = self.next_ledger_id
        self.next_ledger_id += 1
        self._out.append(
            Deposited(
                ledger_id=lid, account=cmd.account, asset=asset, amount=cmd.amount, ref=cmd.ref
            )
        )

    def _request_withdrawal(self, cmd: RequestWithdrawal) -> None:
        asset = self._resolve_asset(cmd.asset)
        if cmd.amount <= 0 or cmd.fee < 0 or cmd.account <= FEE_ACCOUNT:
            raise Rejected(E.FUNDING_INVALID_AMOUNT)
        if not cmd.ref or cmd.ref in self.funding_refs:
            raise Rejected(E.FUNDING_INVALID_REF)
        if not self.withdrawals_on[asset]:
            raise Rejected(E.FUNDING_DISABLED)
        a = self.accounts.get(cmd.account)
        total = cmd.amount + cmd.fee
        if a is None or a.avail[asset] < total:
            raise Rejected(E.INSUFFICIENT_FUNDS)
        a.avail[asset] -= total
        a.held[asset] += total
        self.funding_refs.add(cmd.ref)
        self.withdrawals[cmd.ref] = Withdrawal(
            account=cmd.account,
            asset=asset,
            amount=cmd.amount,
            fee=cmd.fee,
            ref=cmd.ref,
            address=cmd.address,
        )
        self._out.append(
            WithdrawalHeld(
                account=cmd.account,
                asset=asset,
                amount=cmd.amount,
                fee=cmd.fee,
                ref=cmd.ref,
                key=cmd.key,
                address=cmd.address,
            )
        )

    def _complete_withdrawal(self, cmd: CompleteWithdrawal) -> None:
        w = self.withdrawals.pop(cmd.ref, None)
        if w is None:
            raise Rejected(E.FUNDING_UNKNOWN_REF)
        a = self.accounts[w.account]
        a.held[w.asset] -= w.amount + w.fee
        self.accounts[FEE_ACCOUNT].avail[w.asset] += w.fee
        self.supply[w.asset] -= w.amount
        lid = self.next_ledger_id
        self.next_ledger_id += 2
        self._out.append(
            WithdrawalCompleted(
                ledger_id=lid,
                account=w.account,
                asset=w.asset,
                amount=w.amount,
                fee=w.fee,
                ref=w.ref,
                txid=cmd.txid,
            )
        )

    def _send_withdrawal(self, cmd: SendWithdrawal) -> None:
        w = self.withdrawals.get(cmd.ref)
        if w is None:
            raise Rejected(E.FUNDING_UNKNOWN_REF)
        if w.stage != STAGE_QUEUED:
            raise Rejected(E.FUNDING_CANCEL_DENIED)
        if not self.withdrawals_on[w.asset]:
            raise Rejected(E.FUNDING_DISABLED)
        w.stage = STAGE_SENT
        self._out.append(WithdrawalSent(account=w.account, ref=w.ref))

    def _withdrawal_broadcast(self, cmd: MarkWithdrawalBroadcast) -> None:
        w = self.withdrawals.get(cmd.ref)
        if w is None:
            raise Rejected(E.FUNDING_UNKNOWN_REF)
        if w.stage == STAGE_QUEUED or not cmd.txid:
            raise Rejected(E.FUNDING_INVALID_REF)
        w.stage, w.txid = STAGE_BROADCAST, cmd.txid
        self._out.append(WithdrawalBroadcast(account=w.account, ref=w.ref, txid=cmd.txid))

    def _return_withdrawal(self, cmd: ReturnWithdrawal) -> None:
        w = self.withdrawals.get(cmd.ref)
        if w is None or (cmd.account and w.account != cmd.account):
            raise Rejected(E.FUNDING_UNKNOWN_REF)
        if w.stage != STAGE_QUEUED and not (cmd.failed and not cmd.account):
            raise Rejected(E.FUNDING_CANCEL_DENIED)  # custody may still pay it
        del self.withdrawals[cmd.ref]
        a = self.accounts[w.account]
        a.held[w.asset] -= w.amount + w.fee
        a.avail[w.asset] += w.amount + w.fee
        self._out.append(
            WithdrawalReturned(
                account=w.account,
                asset=w.asset,
                amount=w.amount,
                fee=w.fee,
                ref=w.ref,
                reason=cmd.reason,
            )
        )

    def _transfer(self, cmd: Transfer) -> None:
        asset = self._resolve_asset(cmd.asset)
        if cmd.amount <= 0 or cmd.src == cmd.dst or cmd.dst < 0 or cmd.src < 0:
            raise Rejected(E.FUNDING_INVALID_AMOUNT)
        # a ref already seen: this transfer (a credit, say) was made before; checked
        # before the funds, so a retry says "done already" even when the source is empty
        if cmd.ref and cmd.ref in self.funding_refs:
            raise Rejected(E.FUNDING_INVALID_REF)
        src = self.accounts.get(cmd.src)
        if src is None or src.avail[asset] < cmd.amount:
            raise Rejected(E.INSUFFICIENT_FUNDS)
        if cmd.ref:  # only once nothing can refuse it: a refused transfer may be retried
            self.funding_refs.add(cmd.ref)
        dst = self._account(cmd.dst)
        src.avail[asset] -= cmd.amount
        dst.avail[asset] += cmd.amount
        lid = self.next_ledger_id
        self.next_ledger_id += 2
        self._out.append(
            Transferred(
                ledger_id=lid,
                src=cmd.src,
                dst=cmd.dst,
                asset=asset,
                amount=cmd.amount,
                kind=cmd.kind,
                reason=cmd.reason,
            )
        )

    # ------------------------------------------------------------------ operator controls
    def _set_market_mode(self, cmd: SetMarketMode) -> None:
        m = self._resolve_pair(cmd.pair)
        if cmd.mode not in MODE_RANK:
            raise Rejected(E.INVALID_ARGUMENTS + ":mode")
        m.mode = cmd.mode
        self._out.append(MarketModeChanged(pair=m.index, mode=cmd.mode, reason=cmd.reason))
        self._fire_overdue_dms()

    def _set_global_mode(self, cmd: SetGlobalMode) -> None:
        if cmd.mode not in MODE_RANK:
            raise Rejected(E.INVALID_ARGUMENTS + ":mode")
        self.stages = []  # the operator takes over from a staged reopening
        self._global_mode(cmd.mode, cmd.reason)

    def _global_mode(self, mode: str, reason: str) -> None:
        self.global_mode = mode
        self._out.append(GlobalModeChanged(mode=mode, reason=reason))
        self._fire_overdue_dms()

    def _halt(self, cmd: Halt) -> None:
        self.stages = []
        self._global_mode(MAINTENANCE, cmd.reason)
        for spec in self.config.assets:
            if self.withdrawals_on[spec.index]:
                self.withdrawals_on[spec.index] = False
                self._out.append(
                    FundingChanged(
                        asset=spec.index,
                        deposits=self.deposits_on[spec.index],
                        withdrawals=False,
                        reason=cmd.reason,
                    )
                )

    def _resume(self, cmd: Resume) -> None:
        if not cmd.staged:
            self.stages = []
            self._global_mode(ONLINE, cmd.reason)
            return
        if not (0 <= cmd.cancel_only_s <= MAX_STAGE_S and 0 <= cmd.post_only_s <= MAX_STAGE_S):
            raise Rejected(E.INVALID_ARGUMENTS + ":stage duration")
        post_only_at = self.ts + cmd.cancel_only_s * 1_000_000_000
        online_at = post_only_at + cmd.post_only_s * 1_000_000_000
        self.stages = [(post_only_at, POST_ONLY), (online_at, ONLINE)]
        self.stage_reason = cmd.reason
        for ts, mode in self.stages:
            self._push_timer(ts, TIMER_STAGE, 0, mode)
        self._global_mode(CANCEL_ONLY, cmd.reason)

    def _mark_upgrade(self, cmd: MarkUpgrade) -> None:
        if cmd.phase not in UPGRADE_PHASES:
            raise Rejected(E.INVALID_ARGUMENTS + ":phase")
        self._out.append(UpgradePhase(phase=cmd.phase, candidate=cmd.candidate, detail=cmd.detail))

    def _set_funding(self, cmd: SetFunding) -> None:
        asset = self._resolve_asset(cmd.asset, E.UNKNOWN_ASSET)
        if cmd.deposits is not None:
            self.deposits_on[asset] = cmd.deposits
        if cmd.withdrawals is not None:
            self.withdrawals_on[asset] = cmd.withdrawals
        self._out.append(
            FundingChanged(
                asset=asset,
                deposits=self.deposits_on[asset],
                withdrawals=self.withdrawals_on[asset],
                reason=cmd.reason,
            )
        )

    def _promo_event(self, p: Promotion) -> PromotionChanged:
        return PromotionChanged(
            promo_id=p.promo_id,
            state=p.state,
            maker_ppm=p.maker_ppm,
            taker_ppm=p.taker_ppm,
            start_ts=p.start_ts,
            end_ts=p.end_ts,
            scope=p.scope,
            pairs=list(p.pairs),
            accounts=list(p.accounts),
            reason=p.reason,
        )

    def _create_promo(self, cmd: CreatePromotion) -> None:
        if not cmd.promo_id or cmd.promo_id in self.promos:
            raise Rejected(E.INVALID_ARGUMENTS + ":promo_id")
        if not (0 <= cmd.maker_ppm <= PPM and 0 <= cmd.taker_ppm <= PPM):
            raise Rejected(E.INVALID_ARGUMENTS + ":fee")
        if cmd.end_ts <= max(cmd.start_ts, self.ts):
            raise Rejected(E.INVALID_ARGUMENTS + ":until")
        if cmd.scope not in (SCOPE_SPOT, SCOPE_MARGIN, SCOPE_ALL):
            raise Rejected(E.INVALID_ARGUMENTS + ":scope")
        pairs = sorted({self._resolve_pair(p).index for p in cmd.pairs})
        p = Promotion(
            promo_id=cmd.promo_id,
            maker_ppm=cmd.maker_ppm,
            taker_ppm=cmd.taker_ppm,
            start_ts=cmd.start_ts,
            end_ts=cmd.end_ts,
            scope=cmd.scope,
            pairs=pairs,
            accounts=sorted(set(cmd.accounts)),
            reason=cmd.reason,
        )
        self.promos[p.promo_id] = p
        self._out.append(self._promo_event(p))
        if p.start_ts > self.ts:
            self._push_timer(p.start_ts, TIMER_PROMO, 0, p.promo_id)
        self._push_timer(p.end_ts, TIMER_PROMO, 0, p.promo_id)
        self._refresh_promos()

    def _end_promo(self, cmd: EndPromotion) -> None:
        p = self.promos.get(cmd.promo_id)
        if p is None or p.state == "ended":
            raise Rejected(E.INVALID_ARGUMENTS + ":promo_id")
        p.state = "ended"
        p.end_ts = min(p.end_ts, self.ts)
        p.reason = cmd.reason or p.reason
        self._out.append(self._promo_event(p))
        self._refresh_promos()

    def _refresh_promos(self) -> None:
        """Move promotions between scheduled, active and ended as time says; re-derive
        which markets they cover."""
        for p in self.promos.values():
            state = p.state
            if state != "ended":
                if self.ts >= p.end_ts:
                    state = "ended"
                elif self.ts >= p.start_ts:
                    state = "active"
            if state != p.state:
                p.state = state
                self._out.append(self._promo_event(p))
        self._assign_promos()

    def _assign_promos(self) -> None:
        """Give each market the active promotions that cover its (spot) trades."""
        active = [p for p in self.promos.values() if p.state == "active"]
        for m in self.markets:
            m.promos = [
                p
                for p in active
                if p.scope in (SCOPE_SPOT, SCOPE_ALL) and (not p.pairs or m.index in p.pairs)
            ]
