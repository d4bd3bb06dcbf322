"""Fuzzing the Kraken REST surface: hypothesis over methods, parameters and encodings.

One real `cambio serve` (ticks an hour apart, so nothing but these requests moves the
engine) takes generated requests for every public and private method, read from
PublicApi's and PrivateApi's method tables as app.py builds them (new endpoints are
fuzzed as they land), and for unknown method names; as query strings, form bodies, JSON
bodies, raw garbage under any content type, and with broken authentication. Values mix
plausible ones for each parameter (pairs, ids of real orders, trades and ledger entries,
volumes, prices) with hostile ones (empty, huge, negative, NaN and infinities, digits
that are not ASCII, very long strings, lists, nested JSON, booleans spelled oddly).

Every answer must be HTTP 200 with Kraken's envelope, ``{"error": [...], "result"?}``,
each error matching ``^[EW][A-Za-z]+:``. A request answered with an error must leave
the engine as it was: its state document (balances, holds, orders, books, id counters,
dead man's switches ...), read from a snapshot, equals the one before but for ``seq``
and ``ts``, which a refused order legitimately moves (it is journaled as OrderRejected).
Read-only methods must not change it even when they succeed, and a request with broken
authentication must be refused. After a successful call that changed state the fuzzer
disarms timers (dead man's switch, GTD orders) so no later request is blamed for them.

Findings are collected over all examples and reported together, each with the exact
request and answer. ``CAMBIO_FUZZ_SCALE=10`` runs ten times as many examples.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock
from urllib.parse import quote, urlencode

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kraken_rest import admin
from test_server import drain, start

from cambio.api.keys import PERMISSIONS
from cambio.api.kraken.auth import signature
from cambio.api.kraken.private import PrivateApi
from cambio.api.kraken.public import PublicApi
from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import ORDER_TYPES
from cambio.model.config import MarketConfig, load_config
from cambio.model.ids import format_id

SCALE = float(os.environ.get("CAMBIO_FUZZ_SCALE", "1"))
ERROR_FORM = re.compile(r"^[EW][A-Za-z]+:")
TOKEN_METHOD = "GetWebSocketsToken"  # answered by the app itself, not in PrivateApi.methods
READ_ONLY = frozenset({"query_funds", "query_orders"})
STANDING = "fuzz-standing"  # cl_ord_id of the fuzz account's resting order
STANDING_USERREF = "7"
WITHDRAW_KEY = "fuzz-wallet"  # the fuzz account's withdrawal address, in every asset


# ---------------------------------------------------------------- the methods under test
def _built(cls: type, config: MarketConfig) -> dict[str, Any]:
    """The method table of `cls` built as app.py builds it: the real configuration and
    stand-ins for every collaborator (the engine host, read models, sequencer ...)."""
    names = inspect.signature(cls).parameters
    instance = cls(**{n: config if n == "config" else MagicMock() for n in names})
    return dict(instance.methods)


def _listed(cls: type) -> dict[str, Any]:
    """Fallback should construction ever fail: the keys of the dict literal assigned to
    ``self.methods`` in the class's source."""
    for node in ast.walk(ast.parse(inspect.getsource(cls))):
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Attribute) and t.attr == "methods" for t in targets):
                return {
                    k.value: None
                    for k in node.value.keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
    raise AssertionError(f"no method table found in {cls.__name__}")


def _methods(cls: type, config: MarketConfig) -> dict[str, Any]:
    try:
        return _built(cls, config)
    except Exception:  # a collaborator the stand-ins cannot play: read the source
        return _listed(cls)


CONFIG = load_config()
PUBLIC = sorted(_methods(PublicApi, CONFIG))
_PRIVATE_TABLE = _methods(PrivateApi, CONFIG)
PRIVATE = sorted({*_PRIVATE_TABLE, TOKEN_METHOD})
PERMISSION: dict[str, str | None] = {
    name: getattr(m, "permission", None) for name, m in _PRIVATE_TABLE.items()
}
PERMISSION[TOKEN_METHOD] = None


# ---------------------------------------------------------------- values
@dataclass(frozen=True)
class Ref:
    """An id of something live (an order, a trade, a ledger entry), chosen when the request
    is sent: the `index`-th (modulo) of the ids of that kind known by then."""

    kind: str
    index: int


def _ids() -> dict[str, list[Any]]:
    """Plausible ids: live ones, well-formed ids of nothing, client ids."""
    orders = [Ref("order", i) for i in range(4)]
    return {
        "order": [*orders, format_id("O", 10**6), format_id("O", 2**64 - 1), STANDING_USERREF,
                  "OQCLML-BW3P3-BUCMWZ", "-7"],
        "trade": [Ref("trade", 0), Ref("trade", 1), format_id("T", 10**6)],
        "ledger": [Ref("ledger", 0), Ref("ledger", 1), format_id("L", 10**6)],
    }  # fmt: skip


def _plausible(config: MarketConfig) -> dict[str, list[Any]]:
    """For each parameter name Kraken's reference lists, values a client might send."""
    pairs = [v for p in config.pairs for v in (p.id, p.altname, p.wsname)]
    assets = [v for a in config.assets for v in (a.id, a.altname)]
    ids = _ids()
    now = int(time.time())
    soon = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    order = {"ordertype": "limit", "type": "buy", "volume": "0.001", "price": "1000"}
    return {
        "pair": [*pairs, "XBTUSD,ETHXBT", "xbtusd", "BTC/USD"],
        "asset": [*assets, "XBT,USD", "all", "BTC"],
        "type": ["buy", "sell", "all", "trade", "deposit", "withdrawal", "BUY"],
        "ordertype": [*ORDER_TYPES, "LIMIT", "settle-position"],
        "volume": ["0.001", "0.0001", "0.01", "1", "10"],
        "price": ["1000", "50000", "49000.5", "+100", "-1%", "#2", "+5%"],
        "price2": ["1000", "+10", "-0.5%"],
        "displayvol": ["0.0001", "0.001"],
        "leverage": ["none", "2"],
        "oflags": ["post", "fcib", "fciq", "nompp", "viqc", "post,fciq", "fcib,fciq"],
        "timeinforce": ["GTC", "IOC", "GTD", "FOK", "gtc"],
        "expiretm": ["0", "+60", "+5", str(now + 3600)],
        "starttm": ["0", "+5"],
        "stptype": ["cancel-newest", "cancel-oldest", "cancel-both"],
        "userref": [STANDING_USERREF, "-7", "0", "2147483647", "-2147483648"],
        "cl_ord_id": [STANDING, "c1", "6d1b345e-2821-40e2-ad83-4ecb18a06876"],
        "validate": ["true", "false", "1", "0", True],
        "trades": ["true", "false"],
        "txid": ids["order"],
        "order_id": ids["order"],
        "id": ids["ledger"],
        "refid": [Ref("withdrawal", 0), Ref("withdrawal", 1), "FTQcuak-V6Za8qrWnhzTx67yYHz8Tg"],
        "since": ["0", str(now - 60), f"{now}.5", str(time.time_ns())],
        "interval": ["1", "5", "60", "1440", "21600"],
        "count": ["1", "10", "500", "1000"],
        "ofs": ["0", "1", "50"],
        "start": ["0", str(now - 3600), *ids["order"][:1]],
        "end": [str(now + 3600), *ids["order"][1:2]],
        "closetime": ["open", "close", "both"],
        "timeout": ["0", "60", "86399"],
        "order_qty": ["0.002", "0.0005"],
        "display_qty": ["0.0001"],
        "limit_price": ["1001", "+1", "50000"],
        "trigger_price": ["1000", "-1%"],
        "post_only": ["true", "false"],
        "amount": ["1", "0.5", "100"],
        "key": [WITHDRAW_KEY, "default"],
        "method": ["Bitcoin", "Ether", "Bank Frick (SWIFT)"],
        "new": ["true", "false"],
        "address": ["bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"],
        "max_fee": ["0.001"],
        "from": ["Spot Wallet"],
        "to": ["Futures Wallet"],
        "aclass": ["currency"],
        "asset_class": ["currency", "tokenized_asset"],
        "info": ["info", "fees", "leverage", "margin"],
        "deadline": [soon],
        "cursor": ["true", "false"],
        "limit": ["25", "500"],
        "trigger": ["last", "index"],
        "consolidate_taker": ["true"],
        "without_count": ["true"],
        "fee-info": ["True"],
        "orders": [
            [order, {**order, "type": "sell", "price": "900000"}],
            [ids["order"][0], ids["order"][1]],
            [{"txid": ids["order"][0]}, {"cl_ord_id": STANDING}],
        ],
    }


PLAUSIBLE = _plausible(CONFIG)

# Per method: parameters a client always sends, then ones it may send (reference §3, §4).
# A method not listed here (a new endpoint) draws from all parameter names.
KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Time": ((), ()),
    "SystemStatus": ((), ()),
    "GetWebSocketsToken": ((), ()),
    "Assets": ((), ("asset", "aclass")),
    "AssetPairs": ((), ("pair", "info")),
    "Ticker": ((), ("pair", "asset_class")),
    "Depth": (("pair",), ("count",)),
    "OHLC": (("pair",), ("interval", "since")),
    "Trades": (("pair",), ("since", "count")),
    "Spread": (("pair",), ("since",)),
    "Balance": ((), ()),
    "BalanceEx": ((), ()),
    "TradeBalance": ((), ("asset",)),
    "OpenOrders": ((), ("trades", "userref", "cl_ord_id")),
    "ClosedOrders": ((), ("trades", "userref", "cl_ord_id", "start", "end", "ofs",
                          "closetime", "consolidate_taker", "without_count")),
    "QueryOrders": (("txid",), ("trades", "userref", "cl_ord_id", "consolidate_taker")),
    "OrderAmends": (("order_id",), ()),
    "TradesHistory": ((), ("type", "trades", "start", "end", "ofs", "consolidate_taker")),
    "QueryTrades": (("txid",), ("trades",)),
    "Ledgers": ((), ("asset", "aclass", "type", "start", "end", "ofs", "without_count")),
    "QueryLedgers": (("id",), ("trades",)),
    "TradeVolume": ((), ("pair", "fee-info")),
    "AddOrder": (("pair", "type", "ordertype", "volume"),
                 ("price", "price2", "displayvol", "leverage", "oflags", "timeinforce",
                  "expiretm", "starttm", "stptype", "userref", "cl_ord_id", "validate",
                  "deadline", "trigger")),
    "AddOrderBatch": (("pair", "orders"), ("deadline", "validate")),
    "AmendOrder": (("txid",), ("cl_ord_id", "order_qty", "display_qty", "limit_price",
                               "trigger_price", "post_only", "deadline")),
    "EditOrder": (("txid", "pair"), ("volume", "displayvol", "price", "price2", "oflags",
                                     "deadline", "validate", "userref")),
    "CancelOrder": (("txid",), ("cl_ord_id",)),
    "CancelAll": ((), ()),
    "CancelAllOrdersAfter": (("timeout",), ()),
    "CancelOrderBatch": (("orders",), ()),
    "DepositMethods": (("asset",), ("aclass",)),
    "DepositAddresses": (("asset", "method"), ("new", "amount")),
    "DepositStatus": ((), ("asset", "method", "start", "end", "cursor", "limit")),
    "WithdrawMethods": ((), ("asset", "aclass")),
    "WithdrawAddresses": ((), ("asset", "method", "key")),
    "WithdrawInfo": (("asset", "key", "amount"), ()),
    "Withdraw": (("asset", "key", "amount"), ("address", "max_fee")),
    "WithdrawStatus": ((), ("asset", "method", "start", "end", "cursor", "limit")),
    "WithdrawCancel": (("asset", "refid"), ()),
    "WalletTransfer": (("asset", "from", "to", "amount"), ()),
}  # fmt: skip
ONE_PAIR = [v for p in CONFIG.pairs for v in (p.id, p.altname, p.wsname)]
OVERRIDES: dict[tuple[str, str], list[Any]] = {
    ("QueryTrades", "txid"): _ids()["trade"],
    ("AddOrder", "pair"): ONE_PAIR,
    ("AddOrderBatch", "pair"): ONE_PAIR,
    ("EditOrder", "pair"): ONE_PAIR,
    ("EditOrder", "txid"): [Ref("standing", 0), *_ids()["order"]],
    ("AmendOrder", "txid"): [Ref("standing", 0), *_ids()["order"]],
    ("AddOrder", "type"): ["buy", "sell"],
    ("AddOrder", "price"): ["1000", "50000", "49000.5", "+100", "-1%", "#2"],
    ("Ledgers", "type"): ["all", "trade", "deposit", "withdrawal", "transfer"],
    ("TradesHistory", "type"): ["all", "any position", "no position"],
}
ALL_KEYS = tuple(sorted(PLAUSIBLE))
# swept over a method not in KEYS
GENERIC = ("pair", "asset", "txid", "refid", "amount", "key", "volume", "price", "since",
           "count", "ofs", "orders", "timeout", "method")  # fmt: skip

HOSTILE_TEXT = [
    "", " ", "0", "-0", "-1", "00001", " 1 ", "1 2", "1.", ".1", "1e5", "1E-3", "0x10", "1_000",
    "1,000", "+", "-", "#", "%", "+-1", "--1", "1e308", "-1e308", "1e-308", "1e400", "1e999999",
    "NaN", "nan", "-nan", "inf", "-inf", "+inf", "Infinity", "+Infinity", "+nan", "nan%",
    "+inf%", "9" * 30, "9" * 400, "9" * 5000, "0." + "0" * 40 + "1", "1" + "0" * 40,
    str(2**31), str(2**63), str(2**64), str(-(2**63) - 1), "²", "١٢٣", "𝟗", "½", "Ⅻ",
    "true", "True", "TRUE", "yes", "on", "off", "2", "null", "None", "undefined", "[]", "{}",
    "[1,2]", '{"a":1}', "\x00", "\n", "\t", "é", "💥", "\u202e", "a" * 10_000, ",,,", "a,,b",
    "%00", "%ff", "../", "' OR 1=1 --", "<script>", "O" * 19, "OAAAAA-AAAAA-AAAAAA",
    "oqclml-bw3p3-bucmwz",
]  # fmt: skip
HOSTILE_JSON = [
    None, True, False, 0, -1, 2**31, 2**64, 2**200, -(2**200), 1.5, 1e308, -1e308,
    float("nan"), float("inf"), float("-inf"), [], [None], ["a", 1], [[[]]], {},
    {"a": {"b": [None, {"c": 1}]}}, {"": ""},
]  # fmt: skip
# the classes of value most likely to slip past a parser: swept over every parameter
CORE_TEXT = ["", "-1", "nan", "inf", "+inf", "1e400", "9" * 5000, "²", "a" * 10_000, "[]"]
CORE_JSON: list[Any] = [None, True, 1.5, 2**64, float("inf"), [], {"a": [1]}]
# ids that parse but overflow a signed 64-bit column: swept over the id parameters
EDGE_IDS: dict[str, list[str]] = {
    key: [format_id(prefix, 2**64 - 1), format_id(prefix, 2**63)]
    for key, prefix in (("txid", "O"), ("order_id", "O"), ("id", "L"), ("start", "O"))
}
EDGE_TRADE_IDS = [format_id("T", 2**64 - 1), format_id("T", 2**63)]

_safe_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


def hostile(json_ok: bool) -> st.SearchStrategy[Any]:
    text = st.one_of(st.sampled_from(HOSTILE_TEXT), _safe_text)
    if not json_ok:
        return text
    return st.one_of(
        text,
        st.sampled_from(HOSTILE_JSON),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        st.lists(st.one_of(st.none(), _safe_text, st.integers()), max_size=3),
    )


def plausible(method: str, key: str) -> list[Any]:
    return OVERRIDES.get((method, key)) or PLAUSIBLE.get(key) or ["1"]


def values(method: str, key: str, json_ok: bool) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes a hostile one."""
    good = st.sampled_from(plausible(method, key))
    return st.integers(0, 3).flatmap(lambda n: hostile(json_ok) if n == 3 else good)


@st.composite
def params_for(draw: st.DrawFn, method: str, json_ok: bool) -> dict[str, Any]:
    required, optional = KEYS.get(method, ((), ALL_KEYS))
    chosen = list(required) + draw(
        st.lists(st.sampled_from(optional), max_size=4, unique=True) if optional else st.just([])
    )
    if chosen and draw(st.integers(0, 5)) == 5:  # drop one now and then
        chosen.remove(draw(st.sampled_from(chosen)))
    out = {k: draw(values(method, k, json_ok)) for k in chosen}
    if chosen and draw(st.integers(0, 2)) == 2:  # one surely hostile value
        out[draw(st.sampled_from(chosen))] = draw(hostile(json_ok))
    if draw(st.integers(0, 9)) == 9:  # a parameter nobody asked for
        out[draw(st.one_of(st.sampled_from(ALL_KEYS), _safe_text))] = draw(hostile(json_ok))
    return out


# ---------------------------------------------------------------- requests
@dataclass
class Call:
    """One request, before the nonce, the live ids and the signature are filled in."""

    scope: str  # "public" or "private"
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    encoding: str = "form"  # form, form_nonce_last, json, json_int_nonce, query, raw
    verb: str = "POST"
    raw: bytes = b""  # for "raw": the body as it is
    content_type: str | None = None  # None: the encoding's own
    auth: str = "ok"  # ok, reader, bad_sign, unknown_key, no_key, stale, no_nonce, nonce
    nonce: Any = None  # for auth == "nonce": the nonce sent (properly signed)
    query: dict[str, str] = field(default_factory=dict)


NONCES_HOSTILE: list[Any] = [
    "", "0", "-1", "abc", "²", "١٢٣", "𝟗", "1.5", "+5", "1e5", " 1", "0x10", str(2**64),
    "9" * 100, "9" * 5000, True, 1.5, [1], {"n": 1}, None, -5, 2**64,
]  # fmt: skip
AUTH = ["ok"] * 12 + ["reader", "bad_sign", "unknown_key", "no_key", "stale", "no_nonce", "nonce"]
METHOD_NAMES = st.one_of(
    st.sampled_from(["Nothing", "balance", "BALANCE", "Balance ", "Time.", "%00", "0",
                     "a" * 300, "__init__", "methods", "GetWebSocketsToken"]),
    st.from_regex(r"[A-Za-z0-9_.~-]{1,30}", fullmatch=True).filter(lambda s: s.strip(".")),
)  # fmt: skip


def _method(names: list[str]) -> st.SearchStrategy[str]:
    """A method of `names`, one with more parameters more often; now and then an unknown."""
    weighted = [n for n in names for _ in range(1 + sum(map(len, KEYS.get(n, ((), ())))) // 3)]
    known = st.sampled_from(weighted)
    return st.integers(0, 9).flatmap(lambda n: METHOD_NAMES if n == 9 else known)


@st.composite
def public_calls(draw: st.DrawFn) -> Call:
    method = draw(_method(PUBLIC))
    verb = draw(st.sampled_from(["GET", "GET", "POST"]))
    encoding = "query" if verb == "GET" else draw(st.sampled_from(["form", "json"]))
    params = draw(params_for(method, json_ok=encoding == "json"))
    query = draw(params_for(method, json_ok=False)) if verb == "POST" else {}
    return Call(
        "public", method, params, encoding, verb, query={k: _text(v) for k, v in query.items()}
    )


@st.composite
def private_calls(draw: st.DrawFn) -> Call:
    method = draw(_method(PRIVATE))
    encoding = draw(st.sampled_from(["form", "form_nonce_last", "json", "json_int_nonce"]))
    params = draw(params_for(method, json_ok=encoding.startswith("json")))
    auth = draw(st.sampled_from(AUTH))
    nonce = draw(st.sampled_from(NONCES_HOSTILE)) if auth == "nonce" else None
    if not encoding.startswith("json") and not isinstance(nonce, str | None):
        nonce = _text(nonce)
    return Call("private", method, params, encoding, auth=auth, nonce=nonce)


RAW_BODIES = [
    b"", b"\xff\xfe\xfd", b"{", b"}", b"[]", b"[1,2]", b"null", b"1", b'"x"', b"true",
    b'{"a":', b'{"nonce": NaN}', b'{"nonce": Infinity}', b'{"a": 1e999}', b"a=%ff",
    b"a=%zz", b"=&&==", b"&", b"\x00" * 64, b"a" * 100_000, b"nonce", b"nonce=",
    b"pair[]=1&pair[]=2", b"\xef\xbb\xbfpair=XBTUSD", b"--x\r\nContent-Disposition: form-data",
    b'{"pair": "XBTUSD", "pair": ["a"]}', b"[" * 5000 + b"]" * 5000,
]  # fmt: skip
CONTENT_TYPES = [
    "", "application/json", "application/json; charset=latin-1", "APPLICATION/JSON",
    "application/vnd.api+json", "text/plain", "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8", "multipart/form-data; boundary=x",
    "application/octet-stream", "json", "application/json\t; q=1",
]  # fmt: skip


@st.composite
def raw_calls(draw: st.DrawFn) -> Call:
    scope = draw(st.sampled_from(["public", "private"]))
    names = PUBLIC if scope == "public" else PRIVATE
    method = draw(_method(names))
    body = draw(st.one_of(st.sampled_from(RAW_BODIES), st.binary(max_size=200)))
    # private: "nonce" prefixes a signed, fresh nonce so the garbage reaches the method
    auth = "nonce_prefix" if scope == "private" and draw(st.booleans()) else "ok"
    ctype = draw(st.sampled_from(CONTENT_TYPES))
    return Call(scope, method, encoding="raw", raw=body, content_type=ctype, auth=auth)


def _text(value: Any) -> str:
    """A value as form and query strings carry it."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


# ---------------------------------------------------------------- the exchange under test
@dataclass
class Finding:
    problem: str
    request: str
    answer: str
    times: int = 1


class Fuzzer:
    """Sends calls, checks each answer and what it did to the engine, keeps findings."""

    def __init__(self, data: Path, info: dict[str, Any], log: list[str]) -> None:
        self.data = data
        self.api_url: str = info["api_url"]
        token = (data / "admin.token").read_text().strip()
        self.admin = httpx.Client(
            base_url=info["admin_url"], headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        self.http = httpx.Client(timeout=60)
        self.log = log
        self.counter = time.time_ns()
        self.pools: dict[str, list[str]] = {}
        self.findings: dict[tuple[str, str, str], Finding] = {}
        self.sent = 0
        self.mark = 0  # where the server's log stood when the last request was sent
        self.key = self.secret = self.reader_key = self.reader_secret = ""
        self.seq, self.hash, self.doc = 0, "", {}

    def close(self) -> None:
        self.admin.close()
        self.http.close()

    # ------------------------------------------------------------ engine state
    def state(self) -> tuple[int, str]:
        result = self.admin.get("/v1/state").json()["result"]
        return int(result["applied_seq"]), str(result["state_hash"])

    def document(self) -> dict[str, Any]:
        """The engine's state document, from a snapshot taken now."""
        seq = self.admin.post("/v1/snapshot").json()["result"]["seq"]
        _, body = SnapshotStore.read(self.data / "snapshots" / f"{seq:020d}.snap")
        state: dict[str, Any] = msgspec.msgpack.decode(body)["state"]
        return state

    def rebase(self) -> None:
        self.doc = self.document()
        self.seq, self.hash = self.state()

    # ------------------------------------------------------------ plain signed calls
    def nonce(self) -> int:
        self.counter = max(self.counter + 1, time.time_ns())
        return self.counter

    def call(self, method: str, **params: Any) -> Any:
        """A well-formed signed call by the fuzz account; its result (errors fail)."""
        for _ in range(30):
            nonce = str(self.nonce())
            body = urlencode({"nonce": nonce, **params}).encode()
            path = f"/0/private/{method}"
            reply = self.http.post(
                self.api_url + path,
                content=body,
                headers={
                    "API-Key": self.key,
                    "API-Sign": signature(path, nonce, body, self.secret),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            ).json()
            if not any("Rate limit" in e for e in reply["error"]):
                break
            time.sleep(1)
        assert reply["error"] == [], (method, params, reply)
        return reply["result"]

    def settle(self) -> None:
        """After a call that changed state: no timer left armed (so no later request is
        blamed for one firing), a bounded number of open orders, the standing orders in
        place, the pools of live ids refreshed; then a new baseline."""
        if "CancelAllOrdersAfter" in PRIVATE:
            self.call("CancelAllOrdersAfter", timeout="0")
        open_orders: dict[str, Any] = self.call("OpenOrders")["open"]
        if len(open_orders) > 30:
            self.call("CancelAll")
            open_orders = {}
        for txid, order in list(open_orders.items()):
            if order.get("expiretm"):
                self.call("CancelOrder", txid=txid)
                del open_orders[txid]
        clients = {(o.get("cl_ord_id"), o.get("userref")) for o in open_orders.values()}
        if not any(c == STANDING for c, _ in clients):
            self.call("AddOrder", pair="XBTUSD", type="buy", ordertype="limit",
                      volume="0.001", price="1000", cl_ord_id=STANDING)  # fmt: skip
        if not any(str(u) == STANDING_USERREF for _, u in clients):
            self.call("AddOrder", pair="XBTUSD", type="sell", ordertype="limit",
                      volume="0.001", price="900000", userref=STANDING_USERREF)  # fmt: skip
        opened = self.call("OpenOrders")["open"]
        closed = list(self.call("ClosedOrders")["closed"])
        self.pools["order"] = list(opened) + closed[:8]
        self.pools["standing"] = [t for t, o in opened.items() if o.get("cl_ord_id") == STANDING]
        self.pools["trade"] = list(self.call("TradesHistory")["trades"])[:8]
        self.pools["ledger"] = list(self.call("Ledgers")["ledger"])[:8]
        if "WithdrawStatus" in PRIVATE:
            found = self.call("WithdrawStatus")
            rows = found if isinstance(found, list) else next(iter(found.values()), [])
            self.pools["withdrawal"] = [r["refid"] for r in rows if isinstance(r, dict)][:8]
        self.rebase()

    # ------------------------------------------------------------ building requests
    def resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            pool = self.pools.get(value.kind) or [f"no-{value.kind}-yet"]
            return pool[value.index % len(pool)]
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def build(self, call: Call) -> httpx.Request:
        path = f"/0/{call.scope}/{quote(call.method, safe='')}"
        url = self.api_url + path
        params = self.resolve(call.params)
        headers: dict[str, str] = {}
        if call.scope == "public":
            if call.encoding == "query":
                return self.http.build_request(
                    call.verb, url, params={k: _text(v) for k, v in params.items()}
                )
            body = _encode(params, call.encoding)
            headers["Content-Type"] = _content_type(call.encoding)
            if call.encoding == "raw":
                body = call.raw
            if call.content_type is not None:
                headers["Content-Type"] = call.content_type
            return self.http.build_request(
                "POST", url, content=body, headers=headers, params=call.query or None
            )
        # private
        nonce: Any = None if call.auth == "no_nonce" else self.nonce()
        if call.auth == "stale":
            nonce = 1
        if call.auth == "nonce":
            nonce = call.nonce
        if call.encoding == "raw":
            body = call.raw
            if call.auth == "nonce_prefix":
                body = f"nonce={nonce}&".encode() + body
        else:
            if nonce is not None and call.encoding != "json_int_nonce" and call.auth != "nonce":
                nonce = str(nonce)
            fields = dict(params)
            fields.pop("nonce", None)
            if call.auth != "no_nonce":
                if call.encoding == "form_nonce_last":
                    fields["nonce"] = nonce
                else:
                    fields = {"nonce": nonce, **fields}
            body = _encode(fields, call.encoding)
        signed_nonce = _text(nonce) if not isinstance(nonce, bool | list | dict) else str(nonce)
        key, secret = self.key, self.secret
        if call.auth == "reader":
            key, secret = self.reader_key, self.reader_secret
        sign = signature(path, signed_nonce, body, secret)
        if call.auth == "bad_sign":
            sign = signature(path, signed_nonce, body + b"x", secret)
        if call.auth == "unknown_key":
            key = "A" * 56
        if call.auth != "no_key":
            headers |= {"API-Key": key, "API-Sign": sign}
        headers["Content-Type"] = call.content_type or _content_type(call.encoding)
        return self.http.build_request("POST", url, content=body, headers=headers)

    # ------------------------------------------------------------ checking
    def found(self, problem: str, request: httpx.Request, answer: str) -> None:
        method = request.url.path.rsplit("/", 1)[-1]
        cause = ""
        if answer.startswith("Internal Server Error"):  # the server's own account of it
            cause = self.exception()
            answer += f" -- server: {cause}"
        named = method if method in (*PUBLIC, *PRIVATE) else "<unknown>"
        key = (problem.split(":")[0], named, cause[:60])
        if key in self.findings:
            self.findings[key].times += 1
            return
        self.findings[key] = Finding(problem, describe(request), answer[:600])

    def exception(self) -> str:
        """The last line of the traceback the server logged for the last request."""
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            errors = [line for line in self.log[self.mark :] if "Error:" in line]
            if errors:
                return errors[-1]
            time.sleep(0.01)
        return "?"

    def exercise(self, call: Call) -> None:
        request = self.build(call)
        self.sent += 1
        self.mark = len(self.log)
        try:
            reply = self.http.send(request)
        except httpx.HTTPError as exc:
            self.found(f"no answer: {exc!r}", request, "")
            return
        errors = self.check_envelope(request, reply)
        bad_auth = call.scope == "private" and call.auth not in ("ok", "nonce_prefix")
        if bad_auth and call.auth != "reader" and errors == []:
            self.found("accepted despite broken authentication", request, reply.text)
        permission = PERMISSION.get(call.method)
        if call.auth == "reader" and errors == [] and permission not in (None, "query_orders"):
            self.found("a query_orders-only key was let through", request, reply.text)
        read_only = call.scope == "public" or permission in READ_ONLY or call.method == TOKEN_METHOD
        # only an authenticated call of a private method may reach the engine at all
        may_journal = call.scope == "private" and call.method in PRIVATE and not bad_auth
        self.check_state(request, reply, errors != [], read_only, may_journal)

    def check_envelope(self, request: httpx.Request, reply: httpx.Response) -> list[str] | None:
        """The errors of a well-formed answer; None (and a finding) for anything else."""
        if reply.status_code != 200:
            self.found(f"HTTP {reply.status_code}", request, reply.text)
            return None
        try:
            body = json.loads(reply.content)
        except ValueError:
            self.found("answer is not JSON", request, reply.text)
            return None
        errors = body.get("error") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or set(body) - {"error", "result"}
            or not isinstance(errors, list)
            or (not errors and "result" not in body)
        ):
            self.found("answer is not Kraken's envelope", request, reply.text)
            return None
        for e in errors:
            if not isinstance(e, str) or not ERROR_FORM.match(e):
                self.found(f"error not in Kraken's form: {e!r}", request, reply.text)
            elif e.startswith("EService:"):  # input must never halt the exchange
                self.found(f"exchange unavailable: {e}", request, reply.text)
            elif e == "EGeneral:Internal error":  # a bug the server caught and logged
                self.found("internal error", request, reply.text)
        return errors

    def check_state(
        self,
        request: httpx.Request,
        reply: httpx.Response,
        refused: bool,
        read_only: bool,
        may_journal: bool,
    ) -> None:
        seq, digest = self.state()
        if seq != self.seq and not may_journal:
            self.found("journaled a command", request, reply.text)
        if digest == self.hash:
            self.seq = seq
            return
        doc = self.document()
        before = {k: v for k, v in self.doc.items() if k not in ("seq", "ts")}
        after = {k: v for k, v in doc.items() if k not in ("seq", "ts")}
        if before != after and before.get("day") == after.get("day"):
            changed = sorted(k for k in after if before.get(k) != after[k])
            if refused:
                self.found(f"state changed on refused input: {changed}", request, reply.text)
            elif read_only:
                self.found(f"state changed by a read-only call: {changed}", request, reply.text)
        if before == after:
            self.doc, self.seq, self.hash = doc, seq, digest
        else:  # restore what the fuzzer relies on (standing orders, no timers), rebase
            self.settle()

    def report(self) -> str:
        lines = [f"{len(self.findings)} finding(s) in {self.sent} requests:"]
        for f in self.findings.values():
            lines += [f"* {f.problem} (x{f.times})", f"  request: {f.request}",
                      f"  answer:  {f.answer}"]  # fmt: skip
        return "\n".join(lines)

    def assert_clean(self) -> None:
        alive = self.http.get(self.api_url + "/0/public/Time").json()
        assert alive["error"] == [], alive
        if self.findings:
            pytest.fail(self.report(), pytrace=False)

    def begin(self) -> None:
        self.findings.clear()
        self.sent = 0


def _encode(fields: dict[str, Any], encoding: str) -> bytes:
    if encoding.startswith("json"):
        return json.dumps(fields).encode()  # NaN and Infinity as Python writes them
    return urlencode({k: _text(v) for k, v in fields.items()}).encode()


def _content_type(encoding: str) -> str:
    json_body = encoding.startswith("json")
    return "application/json" if json_body else "application/x-www-form-urlencoded"


def describe(request: httpx.Request) -> str:
    body = request.content
    shown = body if len(body) <= 300 else body[:300] + b"...(%d bytes)" % len(body)
    url = str(request.url)
    url = url if len(url) <= 300 else url[:300] + f"...({len(url)} chars)"
    ctype = request.headers.get("content-type", "")
    signed = " (signed)" if "api-sign" in request.headers else ""
    return f"{request.method} {url} Content-Type={ctype!r}{signed} body={shown!r}"


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    proc, info = start(data, "--tick-interval", "3600")
    log = drain(proc)
    fuzzer = Fuzzer(data, info, log)
    try:
        deposits = {"USD": "10000000", "XBT": "1000", "ETH": "10000", "EUR": "1000000",
                    "SOL": "100000", "USDT": "1000000"}  # fmt: skip
        for name in ("maker", "fuzz"):
            body = {"name": name, "deposits": deposits, "tier": "unlimited",
                    "permissions": list(PERMISSIONS)}  # fmt: skip
            made = fuzzer.admin.post("/v1/accounts", json=body).json()
            if made["error"]:  # an operator API without tiers or the withdraw permission
                del body["tier"]
                body["permissions"] = []
                made = fuzzer.admin.post("/v1/accounts", json=body).json()
            assert made["error"] == [], made
            if name == "fuzz":  # where Withdraw may send (if the operator API registers it)
                for asset in CONFIG.assets:
                    where = {"account": made["result"]["account"], "asset": asset.id,
                             "key": WITHDRAW_KEY, "address": f"fuzz-{asset.altname}"}  # fmt: skip
                    fuzzer.admin.post("/v1/withdraw-addresses", json=where)
            if name == "maker":
                for side, price in ((0, 499_000), (1, 501_000)):  # 1 XBT each side of 50,000
                    order = {"type": "add_order", "account": made["result"]["account"],
                             "pair": "XXBTZUSD", "side": side, "qty": 100_000_000,
                             "price": price}  # fmt: skip
                    done = fuzzer.admin.post("/v1/commands", json=order).json()
                    assert done["error"] == [], done
        fuzzer.key, fuzzer.secret = made["result"]["api_key"], made["result"]["api_secret"]
        reader = admin(data, "key", "create", "fuzz", "--permissions", "query_orders")
        fuzzer.reader_key, fuzzer.reader_secret = reader["api_key"], reader["api_secret"]
        fuzzer.call("AddOrder", pair="XBTUSD", type="buy", ordertype="market", volume="0.01")
        fuzzer.settle()  # a trade, ledger entries, the standing orders, a baseline
        yield fuzzer
    finally:
        fuzzer.close()
        proc.terminate()
        proc.wait(30)


FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)


def _examples(n: int) -> int:
    return max(1, int(n * SCALE))


# ---------------------------------------------------------------- the tests
def test_methods_are_discovered() -> None:
    assert {"Time", "Depth", "AssetPairs"} <= set(PUBLIC)
    assert {"Balance", "AddOrder", "CancelOrder", TOKEN_METHOD} <= set(PRIVATE)
    assert PERMISSION["AddOrder"] == "trade"  # built as app.py builds it, not read from source


def test_public_methods_answer_in_the_envelope_and_change_nothing(fuzz: Fuzzer) -> None:
    @settings(FUZZ, max_examples=_examples(200))
    @given(call=public_calls())
    def run(call: Call) -> None:
        fuzz.exercise(call)

    fuzz.begin()
    run()
    fuzz.assert_clean()


def test_private_methods_answer_in_the_envelope_and_refusals_change_nothing(
    fuzz: Fuzzer,
) -> None:
    @settings(FUZZ, max_examples=_examples(500))
    @given(call=private_calls())
    def run(call: Call) -> None:
        fuzz.exercise(call)

    fuzz.begin()
    run()
    fuzz.assert_clean()


def test_garbage_bodies_and_content_types_answer_in_the_envelope(fuzz: Fuzzer) -> None:
    @settings(FUZZ, max_examples=_examples(150))
    @given(call=raw_calls())
    def run(call: Call) -> None:
        fuzz.exercise(call)

    fuzz.begin()
    run()
    fuzz.assert_clean()


def test_every_parameter_of_every_method_against_hostile_values(fuzz: Fuzzer) -> None:
    """Systematic where hypothesis is random: each parameter of each method, the others
    plausible, takes each of the likeliest parser-breakers (text in a form body, other
    JSON types in a JSON body)."""
    fuzz.begin()
    for scope, names in (("public", PUBLIC), ("private", PRIVATE)):
        for method in names:
            required, optional = KEYS.get(method, ((), GENERIC))
            base = {k: plausible(method, k)[0] for k in required}
            for key in dict.fromkeys((*required, *optional)):
                edges = EDGE_IDS.get(key, [])
                if (method, key) == ("QueryTrades", "txid"):
                    edges = EDGE_TRADE_IDS
                for value in [*CORE_TEXT, *CORE_JSON, *edges]:
                    encoding = "query" if scope == "public" else "form"
                    if not isinstance(value, str):
                        encoding = "json"
                    verb = "GET" if encoding == "query" else "POST"
                    fuzz.exercise(Call(scope, method, {**base, key: value}, encoding, verb))
    for value in NONCES_HOSTILE:
        encoding = "form" if isinstance(value, str) else "json"
        fuzz.exercise(Call("private", "Balance", {}, encoding, auth="nonce", nonce=value))
    fuzz.assert_clean()


# ---------------------------------------------------------------- what the fuzzer found
MAX_O, MAX_T, MAX_L = (format_id(p, 2**64 - 1) for p in "OTL")
DEEP = b"[" * 5000 + b"]" * 5000
ADD = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.001", "price": "1000"}
# Requests the fuzzer found answered with HTTP 500 (the id names the server's exception) or
# refused after changing state, kept as exact cases so each fix shows here whatever the
# random examples do. Methods not (yet) served answer EGeneral:Unknown method and pass.
FOUND = [
    pytest.param(Call("private", "Balance", auth="nonce", nonce="²"),
                 id="nonce-superscript-two-ValueError"),
    pytest.param(Call("private", "Balance", auth="nonce", nonce="9" * 5000),
                 id="nonce-5000-digits-ValueError"),
    pytest.param(Call("private", "Balance", encoding="raw", raw=DEEP,
                      content_type="application/json"), id="private-deep-json-RecursionError"),
    pytest.param(Call("public", "Time", encoding="raw", raw=DEEP,
                      content_type="application/json"), id="public-deep-json-RecursionError"),
    pytest.param(Call("public", "Depth", {"pair": "XBTUSD", "count": float("inf")}, "json"),
                 id="Depth-count-Infinity-OverflowError"),
    pytest.param(Call("public", "Depth", {"pair": "XBTUSD", "count": {"a": 1}}, "json"),
                 id="Depth-count-object-TypeError"),
    pytest.param(Call("public", "OHLC", {"pair": "XBTUSD", "since": str(2**64)}, "query", "GET"),
                 id="OHLC-since-2**64-sqlite-OverflowError"),
    pytest.param(Call("public", "Trades", {"pair": "XBTUSD", "since": str(2**64)}, "query",
                      "GET"), id="Trades-since-2**64-sqlite-OverflowError"),
    pytest.param(Call("private", "OpenOrders", {"userref": str(2**63)}),
                 id="OpenOrders-userref-2**63-sqlite-OverflowError"),
    pytest.param(Call("private", "ClosedOrders", {"ofs": str(2**64)}),
                 id="ClosedOrders-ofs-2**64-sqlite-OverflowError"),
    pytest.param(Call("private", "ClosedOrders", {"userref": float("inf")}, "json"),
                 id="ClosedOrders-userref-Infinity-OverflowError"),
    pytest.param(Call("private", "TradesHistory", {"ofs": str(2**64)}),
                 id="TradesHistory-ofs-2**64-sqlite-OverflowError"),
    pytest.param(Call("private", "Ledgers", {"ofs": str(2**64)}),
                 id="Ledgers-ofs-2**64-sqlite-OverflowError"),
    pytest.param(Call("private", "QueryOrders", {"txid": MAX_O}),
                 id="QueryOrders-txid-id-2**64-1-sqlite-OverflowError"),
    pytest.param(Call("private", "QueryTrades", {"txid": MAX_T}),
                 id="QueryTrades-txid-id-2**64-1-sqlite-OverflowError"),
    pytest.param(Call("private", "QueryLedgers", {"id": MAX_L}),
                 id="QueryLedgers-id-2**64-1-sqlite-OverflowError"),
    pytest.param(Call("private", "AmendOrder", {"txid": MAX_O, "order_qty": "0.002"}),
                 id="AmendOrder-txid-id-2**64-1-sqlite-OverflowError"),
    pytest.param(Call("private", "AmendOrder", {"txid": Ref("order", 0), "order_qty": "9" * 5000}),
                 id="AmendOrder-order_qty-5000-digits-ValueError"),
    pytest.param(Call("private", "AddOrder", {**ADD, "volume": "9" * 5000}),
                 id="AddOrder-volume-5000-digits-ValueError"),
    pytest.param(Call("private", "AddOrder", {**ADD, "expiretm": "nan"}),
                 id="AddOrder-expiretm-nan-ValueError"),
    pytest.param(Call("private", "AddOrder", {**ADD, "expiretm": "inf"}),
                 id="AddOrder-expiretm-inf-OverflowError"),
    pytest.param(Call("private", "AddOrder", {**ADD, "expiretm": "+inf"}),
                 id="AddOrder-expiretm-plus-inf-OverflowError"),
    pytest.param(Call("private", "CancelOrder", {"txid": "²"}),
                 id="CancelOrder-txid-superscript-two-ValueError"),
    pytest.param(Call("private", "CancelOrder", {"txid": "9" * 5000}),
                 id="CancelOrder-txid-5000-digits-ValueError"),
    pytest.param(Call("private", "DepositStatus", {"start": str(2**64)}),
                 id="DepositStatus-start-2**64-sqlite-OverflowError"),
    pytest.param(Call("private", "WithdrawStatus", {"start": float("inf")}, "json"),
                 id="WithdrawStatus-start-Infinity-OverflowError"),
    pytest.param(Call("private", "WithdrawStatus", {"cursor": "9" * 5000}),
                 id="WithdrawStatus-cursor-5000-digits-ValueError"),
    # refused, yet the order to edit is gone: cancelled before the engine refused the new one
    pytest.param(Call("private", "EditOrder", {"txid": Ref("standing", 0), "pair": "XBTUSD",
                                               "displayvol": "0.0001", "price": "1000"}),
                 id="EditOrder-refused-displayvol-cancels-the-order"),
    pytest.param(Call("private", "EditOrder", {"txid": Ref("standing", 0), "pair": "XBTUSD",
                                               "volume": "1e400"}),
                 id="EditOrder-refused-volume-1e400-cancels-the-order"),
]  # fmt: skip


@pytest.mark.parametrize("call", FOUND)
def test_requests_the_fuzzer_found(fuzz: Fuzzer, call: Call) -> None:
    fuzz.settle()  # the standing orders back, whatever the cases before did
    assert fuzz.pools["standing"] and fuzz.pools["order"], fuzz.pools
    fuzz.begin()
    fuzz.exercise(call)
    fuzz.assert_clean()
