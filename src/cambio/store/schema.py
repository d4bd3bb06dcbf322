"""The read-model tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Every amount is a BigInteger in the engine's units (see cambio.model.config): asset
amounts in asset units, prices in price units, quantities in lots. Times are ``ts``
(nanoseconds since the Unix epoch, as sequenced), except OHLC's ``time`` (seconds, as
Kraken's API gives it). Pairs and assets are stored by their Kraken ids ("XXBTZUSD",
"XXBT") rather than by the config's indexes, so a config that adds markets later keeps the
stored rows meaningful. Sides are "buy"/"sell".

Aggregates (OHLC sums, volumes) are BigInteger too: they hold for any candle or account-day
below 2**63 of its unit (about 9.2e9 USD of cost per candle on XBT/USD).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

SCHEMA_VERSION = 2  # bump on any change: a database of another version is rebuilt

metadata = MetaData()


def _int(name: str, *, primary_key: bool = False, nullable: bool = False) -> Column[int]:
    """An int64 column (ids, amounts, prices, times); keys are never autoincremented (the
    engine assigns every id)."""
    return Column(name, BigInteger, primary_key=primary_key, nullable=nullable, autoincrement=False)


def _str(name: str, *, primary_key: bool = False, nullable: bool = False) -> Column[str]:
    return Column(name, String(64), primary_key=primary_key, nullable=nullable)


orders = Table(
    "orders",
    metadata,
    _int("order_id", primary_key=True),
    _int("account"),
    _str("pair"),
    _str("side"),
    _str("ordertype"),
    _int("price"),  # limit price (limit, iceberg), trigger price (stop types), 0 (market)
    _int("price2"),  # limit price of *-limit trigger types once known, else 0
    _int("trigger_price"),  # the trade price that fired a trigger order, else 0
    _int("qty"),  # total quantity in lots (quote units for a viqc market buy)
    _int("display_qty"),
    _int("filled"),  # lots, from the order's trades
    _int("cost"),  # quote units, from the order's trades
    _int("fee"),  # in the quote asset, or the base asset when fee_in_base
    Column("trades", Integer, nullable=False),
    _str("status"),  # open, pending, closed, canceled, expired
    _str("reason"),
    _str("tif"),
    _int("expire_ts"),
    Column("post_only", Boolean, nullable=False),
    Column("fee_in_base", Boolean, nullable=False),
    _str("stp"),
    _int("userref", nullable=True),
    _str("cl_ord_id", nullable=True),
    _int("opened_seq"),
    _int("opened_ts"),
    _int("triggered_ts"),  # 0 until a trigger order fires
    _int("closed_seq"),  # 0 while open or pending
    _int("closed_ts"),
    Column("amends", Integer, nullable=False),
    _int("amend_id"),  # the last amend's id, 0 if never amended
    Index("ix_orders_account_status", "account", "status"),
    Index("ix_orders_account_closed", "account", "closed_ts"),
    Index("ix_orders_account_userref", "account", "userref"),
    Index("ix_orders_account_clordid", "account", "cl_ord_id"),
)

# One row per side of a trade, so an account's TradesHistory is one indexed range.
trades = Table(
    "trades",
    metadata,
    _int("trade_id", primary_key=True),
    Column("maker", Boolean, primary_key=True),
    _int("account"),
    _int("order_id"),
    _str("pair"),
    _str("side"),  # this account's side
    _int("price"),
    _int("qty"),
    _int("cost"),
    _int("fee"),
    Column("fee_in_base", Boolean, nullable=False),
    _int("ledger_id"),  # this side's base posting; its quote posting is ledger_id + 1
    _int("seq"),
    _int("ts"),
    Index("ix_trades_account_id", "account", "trade_id"),
    Index("ix_trades_account_ts", "account", "ts"),
    Index("ix_trades_order", "order_id"),
    Index("ix_trades_pair_id", "pair", "trade_id"),
)

# One row per posting of cambio.model.ledger.postings, with the balance after it.
ledger = Table(
    "ledger",
    metadata,
    _int("ledger_id", primary_key=True),
    _int("account"),
    _str("asset"),
    _int("amount"),  # signed, fee already deducted
    _int("fee"),
    _int("balance"),  # the account's balance in the asset after this posting
    _str("type"),  # trade, deposit, withdrawal, transfer, adjustment...
    _int("ref_id"),  # the trade id for trade postings, else 0
    _str("ref"),  # the deposit / withdrawal reference, or a transfer's reason
    _int("seq"),
    _int("ts"),
    Index("ix_ledger_account_asset_id", "account", "asset", "ledger_id"),
    Index("ix_ledger_account_ts", "account", "ts"),
)

# Deposits and withdrawals, one row each, keyed by their reference (Kraken's refid).
funding = Table(
    "funding",
    metadata,
    _str("refid", primary_key=True),
    _str("kind"),  # deposit, withdrawal
    _int("account"),
    _str("asset"),
    _int("amount"),
    _int("fee"),
    _str("status"),  # Pending, Success, Failure (Kraken's words)
    _str("status_prop"),  # "", canceled (by its owner), return (refused or failed)
    _str("key"),  # the withdrawal address's name
    Column("address", String(256), nullable=False),
    Column("txid", String(256), nullable=False),
    _int("opened_ts"),
    _int("closed_ts"),  # 0 while pending
    _int("seq"),
    Index("ix_funding_account_kind_seq", "account", "kind", "seq"),
)

# The latest ledger balance per (account, asset): the running balances' starting point.
balances = Table(
    "balances",
    metadata,
    _int("account", primary_key=True),
    _str("asset", primary_key=True),
    _int("balance"),
    _int("ledger_id"),
)

ohlc = Table(
    "ohlc",
    metadata,
    _str("pair", primary_key=True),
    Column("interval", Integer, primary_key=True, autoincrement=False),  # minutes
    _int("time", primary_key=True),  # start of the candle, seconds since the epoch
    _int("open"),
    _int("high"),
    _int("low"),
    _int("close"),
    _int("volume"),  # lots
    _int("pv"),  # sum of price * qty (price units x lots): vwap = pv / volume
    _int("count"),
)

# Per account, UTC day and pair: the quote volume (exact) and its USD value as the engine
# counts fee volume (cambio.store.valuation), so a 30-day volume is one SUM.
volumes = Table(
    "volumes",
    metadata,
    _int("account", primary_key=True),
    _int("day", primary_key=True),  # days since the epoch (UTC)
    _str("pair", primary_key=True),
    _int("quote_volume"),  # quote units
    _int("usd_volume"),  # 10**-decimals of the fee-volume currency
    _int("count"),
)

# The engine's fee tier per account, as of its last FeeTierChanged.
fee_tiers = Table(
    "fee_tiers",
    metadata,
    _int("account", primary_key=True),
    _int("volume"),
    _int("maker_ppm"),
    _int("taker_ppm"),
    _int("seq"),
    _int("ts"),
)

projection_state = Table(
    "projection_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("version", Integer, nullable=False),
    _int("last_seq"),
    _int("last_ts"),
)
