"""Exact decimal <-> integer conversions: no floats, no silent rounding."""

from __future__ import annotations

import random

import pytest

from cambio.model.decimals import (
    DecimalFormatError,
    format_units,
    parse_fixed,
    rescale,
    to_units,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.250", (1250, 3)),
        ("0", (0, 0)),
        ("42", (42, 0)),
        ("-0.5", (-5, 1)),
        ("  7.0 ", (70, 1)),
        ("1e3", (1000, 0)),
        ("1.5E-3", (15, 4)),
        ("0.00000001", (1, 8)),
        ("30010.0", (300100, 1)),
    ],
)
def test_parse_fixed(text: str, expected: tuple[int, int]) -> None:
    assert parse_fixed(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "1,5", "0x10", "NaN", "inf", "-Infinity"])
def test_parse_fixed_refuses_garbage(text: str) -> None:
    with pytest.raises(DecimalFormatError):
        parse_fixed(text)


def test_decimal_format_error_is_a_value_error() -> None:
    assert issubclass(DecimalFormatError, ValueError)


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [
        ("1.25", 2, 125),
        ("1.25", 8, 125_000_000),
        ("1.2500", 2, 125),  # trailing zeros are not extra precision
        ("30000", 1, 300_000),
        ("0.0001", 8, 10_000),
        ("-2.5", 1, -25),
        ("0", 10, 0),
        ("123456789.123456789", 9, 123_456_789_123_456_789),
    ],
)
def test_to_units(text: str, decimals: int, expected: int) -> None:
    assert to_units(text, decimals) == expected


@pytest.mark.parametrize(("text", "decimals"), [("1.255", 2), ("0.000000001", 8), ("0.5", 0)])
def test_to_units_refuses_excess_precision(text: str, decimals: int) -> None:
    with pytest.raises(DecimalFormatError):
        to_units(text, decimals)


def test_to_units_is_exact_where_floats_are_not() -> None:
    # 0.1 + 0.2 != 0.3 in binary floating point; in units it is exact
    assert to_units("0.1", 18) + to_units("0.2", 18) == to_units("0.3", 18)
    big = "92233720.36854775807"
    assert to_units(big, 11) == 9_223_372_036_854_775_807


def test_rescale() -> None:
    assert rescale(125, 2, 4) == 12500
    assert rescale(12500, 4, 2) == 125
    assert rescale(-12500, 4, 2) == -125
    with pytest.raises(DecimalFormatError):
        rescale(12501, 4, 2)


@pytest.mark.parametrize(
    ("units", "decimals", "shown", "expected"),
    [
        (125, 2, None, "1.25"),
        (5, 3, None, "0.005"),
        (300_100, 1, None, "30010.0"),
        (42, 0, None, "42"),
        (-125, 2, None, "-1.25"),
        (-5, 3, None, "-0.005"),
        (0, 4, None, "0.0000"),
        (125, 2, 5, "1.25000"),  # padded
        (129, 2, 1, "1.2"),  # truncated, never rounded up
        (-129, 2, 1, "-1.2"),  # truncated toward zero
        (199, 2, 0, "1"),
        (100_000_000, 8, 8, "1.00000000"),
    ],
)
def test_format_units(units: int, decimals: int, shown: int | None, expected: str) -> None:
    assert format_units(units, decimals, shown) == expected


def test_format_then_parse_round_trip() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        decimals = rng.randrange(0, 19)
        units = rng.randrange(-(10**20), 10**20)
        text = format_units(units, decimals)
        assert to_units(text, decimals) == units
        mantissa, dp = parse_fixed(text)
        assert (mantissa, dp) == (units, decimals)
