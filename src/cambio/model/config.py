"""Assets and markets: the TOML configuration and the exact integer forms the engine uses.

Units (documented in docs/architecture.md):
* an asset amount is an integer of 10**-units of the asset, where ``units`` is the asset's
  Kraken ``decimals`` raised, where needed, so that every trade's cost is exact (no rounding
  ever happens in a balance transfer; only fees are rounded, down);
* a price is an integer of 10**-pair_decimals of the quote asset (a "price unit"); the
  tick size is a whole number of price units (1 for every default pair, so price units are
  ticks);
* a quantity is an integer of 10**-lot_decimals of the base asset (a "lot");
* fee rates are integers in parts per million of the trade cost (0.26 % = 2600);
* 30-day fee volume is counted in 10**-decimals of the fee-volume currency (USD).

Every amount the engine stores or emits must fit in a signed 64-bit integer (the journal
and snapshots are MessagePack); the engine refuses deposits that would take an asset's
total supply past that, which bounds every balance, hold and trade cost.
"""

from __future__ import annotations

import itertools
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from cambio.model.decimals import to_units

PPM = 1_000_000
DEFAULT_MPP_BAND = "5"  # percent: market orders never execute further than this from the touch


class FeeTier(msgspec.Struct, frozen=True):
    """One step of a fee schedule: from 30-day ``volume`` up, pay ``ppm`` of the cost."""

    volume: int
    ppm: int


class AssetSpec(msgspec.Struct, frozen=True):
    index: int
    id: str
    altname: str
    symbol: str
    decimals: int
    display_decimals: int
    units: int  # the engine's decimals for this asset (>= decimals)
    # funding, as the API presents it (the engine takes the fee in each withdrawal command)
    method: str = ""  # Kraken's deposit/withdrawal method name ("Bitcoin", "SEPA"...)
    network: str = ""  # the chain for addresses; "" for a fiat method (no addresses)
    withdraw_fee: int = 0  # asset units
    withdraw_min: int = 0  # asset units
    confirmations: int = 1  # blocks before a deposit is credited


class PairSpec(msgspec.Struct, frozen=True):
    index: int
    id: str
    altname: str
    wsname: str
    symbol: str
    base: int  # asset index
    quote: int  # asset index
    pair_decimals: int
    lot_decimals: int
    cost_decimals: int
    ordermin: int  # lots
    costmin: int  # quote units
    tick: int  # price units per tick
    base_per_lot: int  # base units in one lot
    quote_per_pq: int  # quote units in (one price unit x one lot)
    maker_tiers: tuple[FeeTier, ...]
    taker_tiers: tuple[FeeTier, ...]
    leverage_buy: tuple[int, ...]
    leverage_sell: tuple[int, ...]
    margin_call: int
    margin_stop: int
    mpp_band_ppm: int
    ordermin_text: str
    costmin_text: str
    tick_size_text: str

    def cost(self, price: int, qty: int) -> int:
        """Exact cost in quote units of `qty` lots at `price`."""
        return price * qty * self.quote_per_pq


class MarketConfig(msgspec.Struct, frozen=True):
    """Everything the engine knows about assets and pairs, in integer form."""

    assets: tuple[AssetSpec, ...]
    pairs: tuple[PairSpec, ...]
    usd_asset: int  # index of the fee-volume currency (-1 if absent)

    def asset(self, name: str) -> AssetSpec:
        """Look an asset up by Kraken id, altname or symbol (case-insensitive)."""
        key = name.upper()
        for a in self.assets:
            if key in (a.id, a.altname, a.symbol):
                return a
        raise KeyError(name)

    def pair(self, name: str) -> PairSpec:
        """Look a pair up by Kraken id, altname, wsname or v2 symbol (case-insensitive)."""
        key = name.upper()
        for p in self.pairs:
            if key in (p.id, p.altname, p.wsname, p.symbol):
                return p
        raise KeyError(name)


class ConfigError(ValueError):
    """The market configuration is inconsistent."""


def _percent_to_ppm(text: str) -> int:
    return to_units(str(text), 4)


def _tiers(rows: list[list[Any]], usd_decimals: int) -> tuple[FeeTier, ...]:
    tiers = tuple(
        FeeTier(volume=to_units(str(v), usd_decimals), ppm=_percent_to_ppm(p)) for v, p in rows
    )
    if not tiers or tiers[0].volume != 0:
        raise ConfigError("a fee schedule must start at volume 0")
    if any(b.volume <= a.volume for a, b in itertools.pairwise(tiers)):
        raise ConfigError("fee tiers must have increasing volumes")
    return tiers


def build_config(doc: dict[str, Any]) -> MarketConfig:
    """Turn a parsed TOML document into a MarketConfig, computing the engine's units."""
    raw_assets = doc.get("asset", [])
    raw_pairs = doc.get("pair", [])
    ids = [a["id"] for a in raw_assets]
    if len(set(ids)) != len(ids):
        raise ConfigError("duplicate asset id")
    index = {a["id"]: i for i, a in enumerate(raw_assets)}
    units = {a["id"]: int(a["decimals"]) for a in raw_assets}
    for p in raw_pairs:
        for side in ("base", "quote"):
            if p[side] not in index:
                raise ConfigError(f"pair {p['id']}: unknown {side} asset {p[side]}")
        units[p["base"]] = max(units[p["base"]], int(p["lot_decimals"]))
        units[p["quote"]] = max(units[p["quote"]], int(p["pair_decimals"]) + int(p["lot_decimals"]))
    assets = tuple(
        AssetSpec(
            index=i,
            id=a["id"],
            altname=a.get("altname", a["id"]),
            symbol=a.get("symbol", a.get("altname", a["id"])),
            decimals=int(a["decimals"]),
            display_decimals=int(a.get("display_decimals", a["decimals"])),
            units=units[a["id"]],
            method=str(a.get("method", a.get("altname", a["id"]))),
            network=str(a.get("network", "")),
            withdraw_fee=to_units(str(a.get("withdraw_fee", "0")), units[a["id"]]),
            withdraw_min=to_units(str(a.get("withdraw_min", "0")), units[a["id"]]),
            confirmations=int(a.get("confirmations", 1)),
        )
        for i, a in enumerate(raw_assets)
    )
    fees = doc.get("fees", {})
    usd_id = fees.get("volume_currency", "ZUSD")
    usd_index = index.get(usd_id, -1)
    usd_decimals = assets[usd_index].decimals if usd_index >= 0 else 0
    pairs = []
    for i, p in enumerate(raw_pairs):
        base, quote = assets[index[p["base"]]], assets[index[p["quote"]]]
        pd, ld = int(p["pair_decimals"]), int(p["lot_decimals"])
        tick = to_units(str(p.get("tick_size", f"1e-{pd}")), pd)
        if tick <= 0:
            raise ConfigError(f"pair {p['id']}: tick_size must be positive")
        pairs.append(
            PairSpec(
                index=i,
                id=p["id"],
                altname=p.get("altname", p["id"]),
                wsname=p.get("wsname", p["id"]),
                symbol=p.get("symbol", p.get("wsname", p["id"])),
                base=base.index,
                quote=quote.index,
                pair_decimals=pd,
                lot_decimals=ld,
                cost_decimals=int(p.get("cost_decimals", pd + ld)),
                ordermin=to_units(str(p.get("ordermin", "0")), ld),
                costmin=to_units(str(p.get("costmin", "0")), quote.units),
                tick=tick,
                base_per_lot=10 ** (base.units - ld),
                quote_per_pq=10 ** (quote.units - pd - ld),
                maker_tiers=_tiers(
                    p.get("fees_maker", fees.get("maker", [[0, "0"]])), usd_decimals
                ),
                taker_tiers=_tiers(p.get("fees", fees.get("taker", [[0, "0"]])), usd_decimals),
                leverage_buy=tuple(int(x) for x in p.get("leverage_buy", [])),
                leverage_sell=tuple(int(x) for x in p.get("leverage_sell", [])),
                margin_call=int(p.get("margin_call", 80)),
                margin_stop=int(p.get("margin_stop", 40)),
                mpp_band_ppm=_percent_to_ppm(str(p.get("mpp_band", DEFAULT_MPP_BAND))),
                ordermin_text=str(p.get("ordermin", "0")),
                costmin_text=str(p.get("costmin", "0")),
                tick_size_text=str(p.get("tick_size", f"1e-{pd}")),
            )
        )
    if len({p.id for p in pairs}) != len(pairs):
        raise ConfigError("duplicate pair id")
    return MarketConfig(assets=assets, pairs=tuple(pairs), usd_asset=usd_index)


def load_config(path: str | Path | None = None) -> MarketConfig:
    """Load the market configuration: the packaged default, or the TOML file at `path`."""
    if path is None:
        text = resources.files("cambio.model").joinpath("markets.toml").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return build_config(tomllib.loads(text))
