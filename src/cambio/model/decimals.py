"""Exact conversions between decimal strings (the edges) and scaled integers (the engine).

Nothing here ever goes through a float: a decimal string becomes an integer mantissa at a
given number of decimals, or is refused when it has more precision than allowed.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_DIGITS = 40  # 2**64 has 20 digits; more would only cost time (1e999999999)


class DecimalFormatError(ValueError):
    """A decimal string that cannot be represented exactly at the requested precision."""


def parse_fixed(text: str) -> tuple[int, int]:
    """Return (mantissa, decimals) of a plain decimal string, e.g. "1.250" -> (1250, 3)."""
    try:
        d = Decimal(text.strip())
    except InvalidOperation as exc:
        raise DecimalFormatError(f"not a decimal number: {text!r}") from exc
    if not d.is_finite():
        raise DecimalFormatError(f"not a finite number: {text!r}")
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) > MAX_DIGITS or abs(exponent) > MAX_DIGITS:  # far beyond any amount
        raise DecimalFormatError(f"too many digits: {text[:50]!r}")
    mantissa = int("".join(map(str, digits)) or "0")
    if sign:
        mantissa = -mantissa
    if exponent >= 0:
        return mantissa * int(10**exponent), 0
    return mantissa, -exponent


def to_units(text: str, decimals: int) -> int:
    """Exact integer number of 10**-decimals units in `text`; refuses excess precision."""
    mantissa, dp = parse_fixed(text)
    return rescale(mantissa, dp, decimals, text)


def rescale(mantissa: int, dp: int, decimals: int, what: str = "value") -> int:
    """Express mantissa*10**-dp in units of 10**-decimals, exactly."""
    if dp <= decimals:
        return mantissa * int(10 ** (decimals - dp))
    factor = int(10 ** (dp - decimals))
    if mantissa % factor:
        raise DecimalFormatError(f"{what} has more than {decimals} decimals")
    return mantissa // factor


def format_units(units: int, decimals: int, shown: int | None = None) -> str:
    """Format an integer amount of 10**-decimals units with `shown` decimals (truncating)."""
    shown = decimals if shown is None else shown
    if shown < decimals:
        q = 10 ** (decimals - shown)
        units = units // q if units >= 0 else -((-units) // q)
        decimals = shown
    elif shown > decimals:
        units *= 10 ** (shown - decimals)
        decimals = shown
    sign = "-" if units < 0 else ""
    units = abs(units)
    if decimals == 0:
        return f"{sign}{units}"
    whole, frac = divmod(units, 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}"


def percent_text(ppm: int) -> str:
    """Parts per million as a percentage without trailing zeros: 1000000 -> "100",
    2600 -> "0.26"."""
    text = format_units(ppm, 4)
    return text.rstrip("0").rstrip(".") if "." in text else text
