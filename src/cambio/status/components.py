"""The page's components, generated from the exchange's own markets and assets, and the
status each should have given a heartbeat (the mapping table is in cambio.status.model).

Groups: Trading (one component per market), Deposits and Withdrawals (one per asset),
API (REST, WebSocket), and the Website.
"""

from __future__ import annotations

from typing import Any

from cambio.model.config import MarketConfig
from cambio.status.model import MAINTENANCE, MAJOR, MODE_STATUS, OPERATIONAL
from cambio.status.store import ComponentSpec

API_KEYS = ("api:rest", "api:ws", "website")


def catalogue(config: MarketConfig) -> list[ComponentSpec]:
    specs = [ComponentSpec("group:trading", "Trading", is_group=True)]
    specs += [
        ComponentSpec(
            f"market:{p.id}",
            f"{p.wsname} trading",
            "group:trading",
            f"Order book and matching for {p.wsname}",
        )
        for p in config.pairs
    ]
    for kind, title in (("deposits", "Deposits"), ("withdrawals", "Withdrawals")):
        specs.append(ComponentSpec(f"group:{kind}", title, is_group=True))
        specs += [
            ComponentSpec(f"{kind}:{a.id}", f"{a.altname} {kind}", f"group:{kind}")
            for a in config.assets
        ]
    specs += [
        ComponentSpec("group:api", "API", is_group=True),
        ComponentSpec("api:rest", "REST API", "group:api", "Kraken-compatible REST"),
        ComponentSpec("api:ws", "WebSocket API", "group:api", "Kraken-compatible WebSocket"),
        ComponentSpec("website", "Website"),
    ]
    return specs


def leaf_keys(config: MarketConfig) -> list[str]:
    return [s.key for s in catalogue(config) if not s.is_group]


def desired(config: MarketConfig, beat: dict[str, Any] | None, alive: bool) -> dict[str, str]:
    """Each component's status: from the heartbeat while it is fresh; every component
    under maintenance once a heartbeat that said "stopping" went stale (the operator
    stopped it); major outage when heartbeats stopped without one."""
    keys = leaf_keys(config)
    if not alive or beat is None:
        planned = beat is not None and bool(beat.get("stopping"))
        return dict.fromkeys(keys, MAINTENANCE if planned else MAJOR)
    out = dict.fromkeys(keys, OPERATIONAL)
    halted = beat.get("global") == "maintenance"
    markets = beat.get("markets") or {}
    for p in config.pairs:
        mode = markets.get(p.wsname)
        if mode is not None:
            out[f"market:{p.id}"] = MODE_STATUS.get(mode, MAJOR)
    off = MAINTENANCE if halted else MAJOR
    for asset, switches in (beat.get("funding") or {}).items():
        if not switches.get("deposits", True):
            out[f"deposits:{asset}"] = off
        if not switches.get("withdrawals", True):
            out[f"withdrawals:{asset}"] = off
    api = beat.get("api") or {}
    for key, flag in (("api:rest", "rest"), ("api:ws", "ws"), ("website", "rest")):
        if not api.get(flag, True):
            out[key] = MAJOR
    return out
