"""The Kraken REST app: ``/0/public/<Method>`` and ``/0/private/<Method>`` at the host root.

Private calls: the API-Key must be known and not revoked, API-Sign must verify over the
raw body, the nonce must be above the key's last one (checked after the signature, so a
forger cannot burn nonces), the key must carry the method's permission, and the call
must fit the account's rate limits (cambio.api.kraken.limits). Every error
is Kraken's string in Kraken's envelope with HTTP 200, because krakenex and
python-kraken-sdk treat any other status as a transport failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from cambio.api.envelope import error, halted, ok
from cambio.api.keys import KeyStore
from cambio.api.kraken.auth import signature_ok
from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.feed import BACKLOG, Feed
from cambio.api.kraken.history import History
from cambio.api.kraken.limits import RateLimits
from cambio.api.kraken.params import BadParams, parse_body
from cambio.api.kraken.private import PrivateApi
from cambio.api.kraken.public import PublicApi
from cambio.api.kraken.tokens import LIFETIME_S, Tokens
from cambio.api.kraken.trading import Trading
from cambio.api.kraken.ws import WsApi
from cambio.custody.adapter import CustodyAdapter, Incoming
from cambio.runtime.host import EngineHost
from cambio.runtime.sequencer import InvalidCommand, SequencerStopped
from cambio.runtime.service import ExchangeService

log = logging.getLogger("cambio.api")
UNKNOWN_METHOD = "EGeneral:Unknown method"
INTERNAL = "EGeneral:Internal error"
TOKEN_METHOD = "GetWebSocketsToken"
TRADING_CALLS = frozenset(
    {"AddOrder", "AddOrderBatch", "AmendOrder", "EditOrder", "CancelOrder", "CancelOrderBatch",
     "CancelAll", "CancelAllOrdersAfter"}
)  # fmt: skip


def internal_error(request: Request) -> Response:
    """A bug, not the client's fault: logged with its traceback (never the body, which may
    carry secrets), answered in Kraken's envelope so clients report it cleanly."""
    log.exception("internal error in %s", request.url.path)
    return error(INTERNAL)


def kraken_app(
    service: ExchangeService,
    keys: KeyStore,
    history: History,
    ws_backlog: int = BACKLOG,
    custody: CustodyAdapter | None = None,
    require_2fa_withdrawals: bool = False,
    pending_deposits: Callable[[int], list[Incoming]] | None = None,
    advisories: Callable[[], dict[str, list[dict[str, Any]]]] | None = None,
) -> Starlette:
    config = service.config

    def host() -> EngineHost:
        return service.host

    public = PublicApi(config, host, history, service.read_models_current, advisories)
    tokens = Tokens()
    limits = RateLimits(keys.tier_of)
    trading = Trading(config, service.execute, service.read_models_current, history, limits)
    private = PrivateApi(
        config, host, trading, service.read_models_current, history, keys, custody,
        require_2fa_withdrawals, pending_deposits,
    )  # fmt: skip
    feed = Feed(config, host)
    assert service.sequencer is not None
    service.sequencer.after_batch.append(feed.on_batch)
    ws = WsApi(service, feed, tokens, history, trading, ws_backlog)

    async def public_call(request: Request) -> Response:
        method = public.methods.get(request.path_params["method"])
        if method is None:
            return error(UNKNOWN_METHOD)
        params = dict(request.query_params)
        try:
            if request.method == "POST":
                body = await request.body()
                params.update(parse_body(body, request.headers.get("content-type", "")))
            return ok(await method(params))
        except BadParams as exc:
            return error(f"EGeneral:Invalid arguments:{exc}")
        except KrakenError as exc:
            return error(*exc.errors)
        except Exception:
            return internal_error(request)

    async def private_call(request: Request) -> Response:
        name = request.path_params["method"]
        method = private.methods.get(name)
        if method is None and name != TOKEN_METHOD:
            return error(UNKNOWN_METHOD)
        body = await request.body()
        try:
            params = parse_body(body, request.headers.get("content-type", ""))
        except BadParams as exc:
            return error(f"EGeneral:Invalid arguments:{exc}")
        key = keys.get(request.headers.get("API-Key", ""))
        if key is None:
            return error("EAPI:Invalid key")
        raw_nonce = str(params.get("nonce", ""))
        if not (raw_nonce.isascii() and raw_nonce.isdigit() and len(raw_nonce) <= 20):
            return error("EAPI:Invalid nonce")
        if int(raw_nonce) >= 2**64:
            return error("EAPI:Invalid nonce")
        if not signature_ok(
            request.url.path, raw_nonce, body, key.secret, request.headers.get("API-Sign", "")
        ):
            return error("EAPI:Invalid signature")
        if not keys.accept_nonce(key, int(raw_nonce)):
            return error("EAPI:Invalid nonce")
        if method is not None and method.permission not in key.permissions:
            return error("EGeneral:Permission denied")
        try:
            if name not in TRADING_CALLS:  # those count on the trading counter instead
                limits.call(key.api_key, key.account, name)
            if method is None:  # GetWebSocketsToken: the token carries the key's permissions
                token = tokens.issue(key.account, key.permissions)
                return ok({"token": token, "expires": LIFETIME_S})
            return ok(await method.run(key.account, params))
        except BadParams as exc:
            return error(f"EGeneral:Invalid arguments:{exc}")
        except KrakenError as exc:
            return error(*exc.errors)
        except SequencerStopped as exc:
            return error(*halted(exc))
        except InvalidCommand as exc:
            return error(f"EGeneral:Invalid arguments:{exc}")
        except Exception:
            return internal_error(request)

    app = Starlette(
        routes=[
            Route("/0/public/{method}", public_call, methods=["GET", "POST"]),
            Route("/0/private/{method}", private_call, methods=["POST"]),
            WebSocketRoute("/v2", ws.endpoint),
        ]
    )
    app.state.feed = feed  # for the operator's metrics (WebSocket clients)
    return app
