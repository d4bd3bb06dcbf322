"""Request parameters the way Kraken's clients send them: forms, JSON, loose booleans,
integers (optionally with a fraction), comma lists; a bad one names itself."""

from __future__ import annotations

import pytest

from cambio.api.kraken.params import BadParams, flag, integer, names, optional_integer, parse_body


def test_form_and_json_bodies() -> None:
    form = parse_body(b"nonce=1&pair=XBTUSD&oflags=post,fcib", "application/x-www-form-urlencoded")
    assert form == {"nonce": "1", "pair": "XBTUSD", "oflags": "post,fcib"}
    assert names(form, "oflags") == ["post", "fcib"] and names(form, "missing") == []
    body = parse_body(b'{"nonce": "2", "orders": [1]}', "application/json; charset=utf-8")
    assert body == {"nonce": "2", "orders": [1]}
    for bad in (b"[1]", b"{not json"):
        with pytest.raises(BadParams):
            parse_body(bad, "application/json")


def test_booleans_in_every_spelling() -> None:
    for text, value in (("True", True), ("false", False), ("1", True), ("0", False)):
        assert flag({"x": text}, "x") is value
    assert flag({}, "x") is False and flag({"x": ""}, "x", default=True) is True
    with pytest.raises(BadParams, match="x must be true or false"):
        flag({"x": "maybe"}, "x")


def test_integers() -> None:
    assert integer({"ofs": "50"}, "ofs", 0) == 50 and integer({}, "ofs", 0) == 0
    assert optional_integer({"userref": "-7"}, "userref") == -7
    assert optional_integer({"userref": ""}, "userref") is None
    assert integer({"since": "1700000000.25"}, "since", 0, fraction_ok=True) == 1700000000
    for params in ({"ofs": "1.5"}, {"ofs": "ten"}, {"ofs": [1]}):
        with pytest.raises(BadParams, match=r"^ofs$"):
            integer(params, "ofs", 0)
