"""WebSocket v2 wire details: fixed-decimal numbers, timestamps, the book checksum.

Kraken sends prices and quantities as JSON numbers written with the pair's fixed decimals
(``1.50000000``, trailing zeros kept) and computes the book checksum from those very
strings; clients that re-format with the pair's decimals agree with it. A float cannot
carry trailing zeros, so numbers go out as pre-rendered JSON (``msgspec.Raw``).
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

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
    parts = []
    for levels in (asks[:10], bids[:10]):
        for price, qty in levels:
            for text in (format_units(price, price_dp), format_units(qty, qty_dp)):
                parts.append(text.replace(".", "").lstrip("0"))
    return zlib.crc32("".join(parts).encode())
