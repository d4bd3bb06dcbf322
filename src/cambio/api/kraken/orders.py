"""AddOrder's parameters, as Kraken's clients send them, turned into an engine command.

Prices and volumes stay decimal text until here: each becomes an integer mantissa with
its number of decimals (``price_dp``/``qty_dp``), and the engine rescales and checks the
precision itself, so its refusals carry Kraken's own error strings. Relative prices keep
their ``+``/``-``/``#`` prefix and ``%`` suffix as a kind and a parts-per-million flag.
The order description (``descr.order``) follows Kraken's grammar, which ccxt parses.
"""

from __future__ import annotations

import time
from typing import Any

from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.params import flag, names, optional_integer
from cambio.model.commands import (
    BUY,
    FOK,
    GTC,
    GTD,
    IOC,
    ORDER_TYPES,
    PRICE_ABS,
    PRICE_AUTO,
    PRICE_MINUS,
    PRICE_PLUS,
    SELL,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    AddOrder,
)
from cambio.model.config import MarketConfig, PairSpec
from cambio.model.decimals import DecimalFormatError, format_units, parse_fixed, to_units

SIDES = {"buy": BUY, "sell": SELL}
TIFS = {"gtc": GTC, "ioc": IOC, "gtd": GTD, "fok": FOK}
STPS = (STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH)
OFLAGS = {"post", "fcib", "fciq", "nompp", "viqc"}
KINDS = {"+": PRICE_PLUS, "-": PRICE_MINUS, "#": PRICE_AUTO}
INT32 = 2**31


def invalid(field: str) -> KrakenError:
    return KrakenError(f"EGeneral:Invalid arguments:{field}")


def _price(text: Any, field: str) -> tuple[int, int, int, bool]:
    """(value, decimals, kind, percent) of a Kraken price argument: "37500", "+50",
    "-1.5%", "#2" ... A percentage is returned in parts per million (decimals 0)."""
    raw = str(text).strip()
    kind = KINDS.get(raw[:1], PRICE_ABS)
    if kind != PRICE_ABS:
        raw = raw[1:]
    pct = raw.endswith("%")
    try:
        if pct:
            return to_units(raw[:-1], 4), 0, kind, True  # 1 % = 10,000 ppm
        value, dp = parse_fixed(raw)
    except DecimalFormatError:
        raise invalid(field) from None
    if value < 0:
        raise invalid(field)
    return value, dp, kind, False


def _expiry(text: Any) -> int:
    """expiretm: 0, a Unix time, or +seconds from now; in ns."""
    raw = str(text).strip()
    try:
        seconds = float(raw[1:] if raw.startswith("+") else raw)
    except ValueError:
        raise invalid("expiretm") from None
    if not 0 <= seconds < 2**33:  # also refuses nan and inf
        raise invalid("expiretm")
    ns = int(seconds * 1e9)
    return time.time_ns() + ns if raw.startswith("+") else ns


def add_order(config: MarketConfig, account: int, p: dict[str, Any]) -> tuple[AddOrder, str]:
    """The engine command for an AddOrder request, and its ``descr.order`` text."""
    try:
        pair = config.pair(str(p.get("pair", "")))
    except KeyError:
        raise KrakenError("EQuery:Unknown asset pair") from None
    side = SIDES.get(str(p.get("type", "")).lower())
    if side is None:
        raise invalid("type")
    ordertype = str(p.get("ordertype", "")).lower()
    if ordertype not in ORDER_TYPES:
        raise invalid("ordertype")
    if str(p.get("leverage", "none")).lower() not in ("none", "", "0", "1"):
        raise KrakenError("EGeneral:Invalid arguments:leverage")  # margin: not offered yet
    if any(k.startswith("close[") for k in p) or str(p.get("starttm", "0")) not in ("0", ""):
        raise KrakenError("EGeneral:Invalid arguments:close orders and starttm not supported")
    try:
        qty, qty_dp = parse_fixed(str(p.get("volume", "")))
    except DecimalFormatError:
        raise invalid("volume") from None
    if qty <= 0:
        raise invalid("volume")
    oflags = set(names(p, "oflags"))
    if oflags - OFLAGS or {"fcib", "fciq"} <= oflags:
        raise invalid("oflags")
    tif = TIFS.get(str(p.get("timeinforce", "GTC")).lower())
    if tif is None:
        raise invalid("timeinforce")
    stp = str(p.get("stptype", STP_CANCEL_NEWEST))
    if stp not in STPS:
        raise invalid("stptype")
    userref = optional_integer(p, "userref")
    if userref is not None and not -INT32 <= userref < INT32:
        raise invalid("userref")
    cl_ord_id = p.get("cl_ord_id") or None
    if cl_ord_id is not None and userref is not None:
        raise invalid("cl_ord_id and userref are exclusive")
    fields: dict[str, Any] = {}
    for name in ("price", "price2"):
        if p.get(name) not in (None, ""):
            value, dp, kind, pct = _price(p[name], name)
            fields |= {name: value, f"{name}_dp": dp, f"{name}_kind": kind, f"{name}_pct": pct}
    if p.get("displayvol") not in (None, ""):
        try:
            fields["display_qty"] = to_units(str(p["displayvol"]), pair.lot_decimals)
        except DecimalFormatError:
            raise invalid("displayvol") from None
    expire = _expiry(p["expiretm"]) if p.get("expiretm") not in (None, "", "0") else 0
    cmd = AddOrder(
        account=account,
        pair=pair.id,
        side=side,
        ordertype=ordertype,
        qty=qty,
        qty_dp=qty_dp,
        tif=tif,
        expire_ts=expire,
        post_only="post" in oflags,
        fee_in_base="fcib" in oflags,
        no_mpp="nompp" in oflags,
        quote_qty="viqc" in oflags,
        stp=stp,
        userref=userref,
        cl_ord_id=None if cl_ord_id is None else str(cl_ord_id),
        validate=flag(p, "validate"),
        **fields,
    )
    text = describe(
        pair,
        "buy" if side == BUY else "sell",
        ordertype,
        _fixed(p["volume"], pair.lot_decimals),
        _fixed(p.get("price"), pair.pair_decimals),
        _fixed(p.get("price2"), pair.pair_decimals),
    )
    return cmd, text


def _fixed(text: Any, decimals: int) -> str:
    """An absolute decimal shown with `decimals` places; anything else (a relative price,
    too many decimals) as it was given."""
    try:
        return format_units(to_units(str(text), decimals), decimals)
    except DecimalFormatError:
        return str(text)


def describe(
    pair: PairSpec, side: str, ordertype: str, volume: str, price: str, price2: str
) -> str:
    """Kraken's ``descr.order`` from the order's formatted fields, the grammar ccxt parses:
    "buy 1.25000000 XBTUSD @ limit 37500.0", "sell 0.1 XBTUSD @ stop loss 30000.0 ->
    limit 29900.0", "buy 0.5 XBTUSD @ market"."""
    head = f"{side} {volume} {pair.altname} @ "
    if ordertype == "market":
        return head + "market"
    words = ordertype.replace("-limit", "").replace("-", " ")
    limit = f" -> limit {price2}" if ordertype.endswith("-limit") else ""
    return f"{head}{words} {price}{limit}"
