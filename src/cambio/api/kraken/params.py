"""Request parameters as Kraken's clients really send them.

Private calls are POSTs with a form body (ccxt puts ``nonce`` first, krakenex and
python-kraken-sdk last; ``; charset=utf-8`` may follow the content type) or a JSON body
(ccxt and the SDK for batches: nonce as a string); public calls are GETs with a query
string. Booleans arrive as true/false/True/False/1/0.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl


class BadParams(ValueError):
    """The body could not be read as a form or as JSON."""


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    if not body:
        return {}
    if "json" in content_type.lower():
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadParams(str(exc)) from None
        except RecursionError:
            raise BadParams("JSON nested too deeply") from None
        if not isinstance(value, dict):
            raise BadParams("JSON body must be an object")
        return value
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError as exc:
        raise BadParams(str(exc)) from None


def flag(params: dict[str, Any], name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise BadParams(f"{name} must be true or false")


INT64 = 2**63


def optional_integer(params: dict[str, Any], name: str, *, fraction_ok: bool = False) -> int | None:
    """A signed 64-bit integer parameter (a JSON integer or ASCII digits), None when absent
    or empty. With `fraction_ok`, a decimal such as "1700000000.25" counts by its whole
    part (times sent with a fraction)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str) or (fraction_ok and isinstance(value, float)):
        text = str(value).strip()
    else:
        raise BadParams(name)
    if fraction_ok:
        whole, _, fraction = text.partition(".")
        if fraction and not (fraction.isascii() and fraction.isdigit()):
            raise BadParams(name)
        text = whole
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise BadParams(name)
    number = int(text)
    if not -INT64 <= number < INT64:
        raise BadParams(name)
    return number


def integer(params: dict[str, Any], name: str, default: int, *, fraction_ok: bool = False) -> int:
    """An integer parameter, `default` when absent or empty."""
    value = optional_integer(params, name, fraction_ok=fraction_ok)
    return default if value is None else value


def names(params: dict[str, Any], name: str) -> list[str]:
    """A comma-separated list parameter (absent: empty)."""
    value = params.get(name)
    if value in (None, ""):
        return []
    return [part.strip() for part in str(value).split(",") if part.strip()]
