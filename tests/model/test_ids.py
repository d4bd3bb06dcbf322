"""Kraken-style ids (reference §1.3: order ids ``OXXXXX-XXXXX-XXXXXX``, trades ``T...``,
ledger entries ``L...``): a reversible bijection that refuses anything it did not make."""

from __future__ import annotations

import random
import re

import pytest

from cambio.model.ids import format_id, parse_id

SHAPE = re.compile(r"^[OTL][A-Z2-7]{5}-[A-Z2-7]{5}-[A-Z2-7]{6}$")
SAMPLES = [0, 1, 2, 3, 42, 16_383, 16_384, 10**6, 2**32, 2**63 - 1]


@pytest.mark.parametrize("n", SAMPLES)
@pytest.mark.parametrize("prefix", ["O", "T", "L"])
def test_round_trip(prefix: str, n: int) -> None:
    text = format_id(prefix, n)
    assert SHAPE.match(text), text
    assert text[0] == prefix
    assert parse_id(prefix, text) == n


def test_round_trip_random() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        n = rng.randrange(0, 2**63)
        assert parse_id("O", format_id("O", n)) == n


@pytest.mark.parametrize("n", [2**63, 2**64 - 1])
def test_ids_beyond_signed_64_bits_are_refused(n: int) -> None:
    """The engine and the read models hold ids as signed 64-bit integers: a well-formed id
    above them cannot name anything, and would overflow a database column."""
    with pytest.raises(ValueError, match="not a O id"):
        parse_id("O", format_id("O", n))


def test_ids_are_distinct_and_do_not_look_sequential() -> None:
    ids = [format_id("O", n) for n in range(1, 2001)]
    assert len(set(ids)) == len(ids)
    # consecutive engine ids do not share their first group (they look random)
    firsts = {i[1:6] for i in ids}
    assert len(firsts) > 1900


def test_formatting_is_deterministic() -> None:
    assert format_id("O", 12345) == format_id("O", 12345)
    assert format_id("O", 12345)[1:] == format_id("T", 12345)[1:]


def test_parse_is_case_and_space_tolerant() -> None:
    text = format_id("O", 987654321)
    assert parse_id("O", text.lower()) == 987654321
    assert parse_id("O", f"  {text}\n") == 987654321


@pytest.mark.parametrize(
    "text",
    [
        "",
        "O",
        "OQCLML-BW3P3-BUCMWZ",  # Kraken's documentation example, not one of ours
        "OAAAAA-AAAAA-AAAAA",  # too short
        "OAAAAA-AAAAA-AAAAAAA",  # too long
        "OAAAAAAAAAAAAAAAAAA",  # no dashes
        "OAAAAA_AAAAA_AAAAAA",
        "OAAAA0-AAAAA-AAAAAA",  # 0, 1, 8, 9 are not base-32 digits
        "OAAAA1-AAAAA-AAAAAA",
        "OAAAA8-AAAAA-AAAAAA",
        "O!AAAA-AAAAA-AAAAAA",
        "not an id at all",
    ],
)
def test_parse_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_id("O", text)


def test_parse_refuses_the_wrong_prefix() -> None:
    text = format_id("T", 5)
    with pytest.raises(ValueError):
        parse_id("O", text)
    with pytest.raises(ValueError):
        parse_id("L", text)


def test_parse_detects_a_changed_character() -> None:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    rng = random.Random(99)
    for n in (1, 2, 77, 123_456, 2**40 + 3):
        text = format_id("O", n)
        for pos in [i for i in range(1, 19) if text[i] != "-"]:
            c = rng.choice([a for a in alphabet if a != text[pos]])
            tampered = text[:pos] + c + text[pos + 1 :]
            with pytest.raises(ValueError):
                parse_id("O", tampered)


def test_every_change_of_the_first_character_is_detected() -> None:
    text = format_id("O", 5)
    for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567":
        t = "O" + c + text[2:]
        if t != text:
            with pytest.raises(ValueError):
                parse_id("O", t)
