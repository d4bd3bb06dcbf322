"""WebSocket v2 wire details: fixed-decimal numbers, timestamps, the book checksums.

Kraken sends prices and quantities as JSON numbers written with the pair's fixed decimals
(``1.50000000``, trailing zeros kept) and computes the book checksum from those very
strings; clients that re-format with the pair's decimals agree with it. A float cannot
carry trailing zeros, so numbers go out as pre-rendered JSON (``msgspec.Raw``).
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

import msgspec

from cambio.model.decimals import format_units


def number(units: int, decimals: int) -> msgspec.Raw:
    """A JSON number with exactly `decimals` decimals: 45285.2, 0.00100000."""
    return msgspec.Raw(format_units(units, decimals).encode())


def timestamp(ns: int) -> str:
    """RFC 3339 with microseconds, as Kraken's v2 API writes times."""
    return datetime.fromtimestamp(ns // 1000 / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checksum(asks: list[list[int]], bids: list[list[int]], price_dp: int, qty_dp: int) -> int:
    """CRC32 of the top 10 asks (lowest first) then the top 10 bids (highest first), each
    level as price then quantity, written with fixed decimals, '.' removed, leading zeros
    stripped."""
    parts: list[str] = []
    for levels in (asks[:10], bids[:10]):
        for price, qty in levels:
            parts.append(_digits(price, price_dp) + _digits(qty, qty_dp))
    return zlib.crc32("".join(parts).encode())


def order_checksum(asks: list[list[Any]], bids: list[list[Any]], price_dp: int, qty_dp: int) -> int:
    """The level3 checksum: as `checksum`, but each of the top 10 levels contributes every
    order in queue order (its price then its quantity), so queue priority is verified too.
    Levels are [price, [[order id, qty, ts], ...]]."""
    parts: list[str] = []
    for levels in (asks[:10], bids[:10]):
        for price, orders in levels:
            text = _digits(price, price_dp)
            parts.extend(text + _digits(qty, qty_dp) for _, qty, _ in orders)
    return zlib.crc32("".join(parts).encode())


def _digits(units: int, decimals: int) -> str:
    return format_units(units, decimals).replace(".", "").lstrip("0")
