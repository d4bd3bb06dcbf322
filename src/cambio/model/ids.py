"""Kraken-style identifiers for the engine's integer ids, and back.

The engine numbers orders, trades and ledger entries 1, 2, 3...; clients expect opaque
strings like ``OQCLML-BW3P3-BUCMWZ``. The mapping is a fixed bijection (a multiplicative
permutation of 2**64, plus 16 check bits, in base 32), so ids look random but are
deterministic and reversible without a lookup table.
"""

from __future__ import annotations

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_MASK = (1 << 64) - 1
_MUL = 0x9E3779B97F4A7C15  # odd, so invertible mod 2**64
_INV = pow(_MUL, -1, 1 << 64)


def _check(x: int) -> int:
    return ((x * 0xC2B2AE3D27D4EB4F) >> 48) & 0xFFFF


def format_id(prefix: str, n: int) -> str:
    """Format engine id `n` (0 <= n < 2**64) as ``PXXXXX-XXXXX-XXXXXX``."""
    x = (n * _MUL) & _MASK
    v = (_check(x) << 64) | x  # 80 bits = 16 base-32 characters
    body = "".join(_ALPHABET[(v >> (5 * i)) & 31] for i in range(15, -1, -1))
    return f"{prefix}{body[:5]}-{body[5:10]}-{body[10:]}"


def parse_id(prefix: str, text: str) -> int:
    """Inverse of format_id; raises ValueError for anything it did not produce."""
    t = text.strip().upper()
    if len(t) != 19 or t[0] != prefix or t[6] != "-" or t[12] != "-":
        raise ValueError(f"not a {prefix} id: {text!r}")
    v = 0
    for c in t[1:6] + t[7:12] + t[13:]:
        if c not in _INDEX:
            raise ValueError(f"not a {prefix} id: {text!r}")
        v = (v << 5) | _INDEX[c]
    x = v & _MASK
    if v >> 64 != _check(x):
        raise ValueError(f"not a {prefix} id: {text!r}")
    value = (x * _INV) & _MASK
    if value >= 2**63:  # ids are signed 64-bit in the engine and the read models
        raise ValueError(f"not a {prefix} id: {text!r}")
    return value


def is_chain_txid(ref: str) -> bool:
    """Whether a funding ref is a chain transaction id (64 hex digits), as the funding
    worker uses for the deposits it credits; operator credits use other refs."""
    return len(ref) == 64 and all(c in "0123456789abcdef" for c in ref)
