"""The market configuration: Kraken names and precisions, exact integer units, fee tiers
(reference §1.3, §6.1, §6.5) and refusal of inconsistent configurations."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from cambio.model.config import ConfigError, MarketConfig, build_config, load_config
from cambio.model.decimals import to_units

# §6.1, API / legacy schedule: (30-day USD volume, maker %, taker %)
SCHEDULE = [
    (0, "0.16", "0.26"),
    (50_000, "0.14", "0.24"),
    (100_000, "0.12", "0.22"),
    (250_000, "0.10", "0.20"),
    (500_000, "0.08", "0.18"),
    (1_000_000, "0.06", "0.16"),
    (2_500_000, "0.04", "0.14"),
    (5_000_000, "0.02", "0.12"),
    (10_000_000, "0.00", "0.10"),
]


def ppm(percent: str) -> int:
    return to_units(percent, 4)


@pytest.fixture(scope="module")
def cfg() -> MarketConfig:
    return load_config()


def default_doc() -> dict[str, Any]:
    text = resources.files("cambio.model").joinpath("markets.toml").read_text("utf-8")
    return tomllib.loads(text)


def minimal_doc() -> dict[str, Any]:
    return {
        "fees": {"taker": [[0, "0.26"]], "maker": [[0, "0.16"]]},
        "asset": [
            {"id": "XXBT", "altname": "XBT", "decimals": 10},
            {"id": "ZUSD", "altname": "USD", "decimals": 4},
        ],
        "pair": [
            {
                "id": "XXBTZUSD",
                "altname": "XBTUSD",
                "base": "XXBT",
                "quote": "ZUSD",
                "pair_decimals": 1,
                "lot_decimals": 8,
                "ordermin": "0.0001",
                "costmin": "0.5",
            }
        ],
    }


# ---------------------------------------------------------------------------- default markets


def test_default_assets_have_kraken_ids_and_altnames(cfg: MarketConfig) -> None:
    names = {a.id: (a.altname, a.decimals) for a in cfg.assets}
    assert names["XXBT"] == ("XBT", 10)
    assert names["XETH"] == ("ETH", 10)
    assert names["ZUSD"] == ("USD", 4)
    assert names["ZEUR"] == ("EUR", 4)


@pytest.mark.parametrize("name", ["XXBT", "XBT", "BTC", "xbt", "btc"])
def test_asset_lookup_by_any_name(cfg: MarketConfig, name: str) -> None:
    assert cfg.asset(name).id == "XXBT"


@pytest.mark.parametrize("name", ["XXBTZUSD", "XBTUSD", "XBT/USD", "BTC/USD", "btc/usd"])
def test_pair_lookup_by_id_altname_wsname_symbol(cfg: MarketConfig, name: str) -> None:
    p = cfg.pair(name)
    assert (p.id, p.altname, p.wsname, p.symbol) == ("XXBTZUSD", "XBTUSD", "XBT/USD", "BTC/USD")


def test_unknown_names_raise_key_error(cfg: MarketConfig) -> None:
    with pytest.raises(KeyError):
        cfg.asset("DOGE")
    with pytest.raises(KeyError):
        cfg.pair("DOGEUSD")


def test_indexes_are_positions(cfg: MarketConfig) -> None:
    assert [a.index for a in cfg.assets] == list(range(len(cfg.assets)))
    assert [p.index for p in cfg.pairs] == list(range(len(cfg.pairs)))
    assert cfg.assets[cfg.pair("XBTUSD").base].id == "XXBT"
    assert cfg.assets[cfg.pair("XBTUSD").quote].id == "ZUSD"
    assert cfg.assets[cfg.usd_asset].id == "ZUSD"


def test_xbtusd_precisions_and_minimums(cfg: MarketConfig) -> None:
    p = cfg.pair("XBTUSD")
    assert (p.pair_decimals, p.lot_decimals) == (1, 8)
    assert p.ordermin == to_units("0.0001", 8)
    assert p.costmin == to_units("0.5", cfg.assets[p.quote].units)
    assert (p.ordermin_text, p.costmin_text) == ("0.0001", "0.5")


def test_tick_size_equals_pair_decimals_step(cfg: MarketConfig) -> None:
    # §6.5: keep tick_size == 10^-pair_decimals or ccxt sends off-grid prices
    for p in cfg.pairs:
        assert p.tick == 1, p.id


def test_units_make_every_cost_exact(cfg: MarketConfig) -> None:
    for p in cfg.pairs:
        base, quote = cfg.assets[p.base], cfg.assets[p.quote]
        assert base.units >= base.decimals and base.units >= p.lot_decimals
        assert quote.units >= quote.decimals and quote.units >= p.pair_decimals + p.lot_decimals
        assert p.base_per_lot == 10 ** (base.units - p.lot_decimals)
        assert p.quote_per_pq == 10 ** (quote.units - p.pair_decimals - p.lot_decimals)


def test_cost_is_price_times_quantity_in_quote_units(cfg: MarketConfig) -> None:
    p = cfg.pair("XBTUSD")
    usd = cfg.assets[p.quote]
    # 1.5 BTC at 30000.1 USD = 45000.15 USD
    cost = p.cost(to_units("30000.1", p.pair_decimals), to_units("1.5", p.lot_decimals))
    assert cost == to_units("45000.15", usd.units)
    # the smallest price times the smallest lot is still a whole number of units
    assert p.cost(1, 1) >= 1


def test_default_fee_schedule_is_the_reference_schedule(cfg: MarketConfig) -> None:
    for p in cfg.pairs:
        scale = p.taker_tiers[1].volume // 50_000
        assert scale >= 1
        assert [(t.volume, t.ppm) for t in p.taker_tiers] == [
            (v * scale, ppm(taker)) for v, _, taker in SCHEDULE
        ]
        assert [(t.volume, t.ppm) for t in p.maker_tiers] == [
            (v * scale, ppm(maker)) for v, maker, _ in SCHEDULE
        ]


def test_first_tier_is_0_16_and_0_26_percent(cfg: MarketConfig) -> None:
    p = cfg.pair("XBTUSD")
    assert p.maker_tiers[0].ppm == 1600 and p.taker_tiers[0].ppm == 2600


def test_default_market_price_protection_band_is_five_percent(cfg: MarketConfig) -> None:
    assert all(p.mpp_band_ppm == 50_000 for p in cfg.pairs)


def test_leverage_from_config(cfg: MarketConfig) -> None:
    p = cfg.pair("XBTUSD")
    assert p.leverage_buy == (2, 3, 4, 5) and p.leverage_sell == (2, 3, 4, 5)
    assert cfg.pair("USDTUSD").leverage_buy == ()


# ---------------------------------------------------------------------------- building


def test_minimal_doc_builds() -> None:
    cfg = build_config(minimal_doc())
    p = cfg.pair("XBTUSD")
    assert p.wsname == "XXBTZUSD"  # defaults to the id when absent
    assert cfg.asset("USD").units == 9  # raised from 4 to pair_decimals + lot_decimals
    assert cfg.asset("XBT").units == 10
    assert p.tick == 1


def test_units_are_raised_to_the_finest_pair() -> None:
    doc = minimal_doc()
    doc["asset"].append({"id": "XETH", "altname": "ETH", "decimals": 10})
    doc["pair"].append(
        {
            "id": "XETHXXBT",
            "base": "XETH",
            "quote": "XXBT",
            "pair_decimals": 5,
            "lot_decimals": 8,
        }
    )
    cfg = build_config(doc)
    assert cfg.asset("XBT").units == 13


def test_custom_tick_size() -> None:
    doc = minimal_doc()
    doc["pair"][0]["tick_size"] = "0.5"
    assert build_config(doc).pair("XBTUSD").tick == 5


def test_per_pair_fee_schedule() -> None:
    doc = minimal_doc()
    doc["pair"][0]["fees"] = [[0, "0.20"], [1000, "0.10"]]
    p = build_config(doc).pair("XBTUSD")
    assert [t.ppm for t in p.taker_tiers] == [2000, 1000]
    assert [t.ppm for t in p.maker_tiers] == [1600]


def test_no_usd_asset() -> None:
    doc = minimal_doc()
    doc["fees"]["volume_currency"] = "ZJPY"
    assert build_config(doc).usd_asset == -1


def test_load_config_from_a_file(tmp_path: Path) -> None:
    src = resources.files("cambio.model").joinpath("markets.toml").read_text("utf-8")
    path = tmp_path / "m.toml"
    path.write_text(src, "utf-8")
    assert load_config(path) == load_config()
    assert load_config(str(path)) == load_config()


def test_config_is_deterministic() -> None:
    assert build_config(default_doc()) == build_config(default_doc())


# ---------------------------------------------------------------------------- refusals


def _break(change: str) -> dict[str, Any]:
    doc = copy.deepcopy(minimal_doc())
    if change == "duplicate asset":
        doc["asset"].append(dict(doc["asset"][0]))
    elif change == "unknown base":
        doc["pair"][0]["base"] = "XDOGE"
    elif change == "unknown quote":
        doc["pair"][0]["quote"] = "ZJPY"
    elif change == "tiers not from 0":
        doc["fees"]["taker"] = [[10, "0.26"]]
    elif change == "tiers not increasing":
        doc["fees"]["maker"] = [[0, "0.16"], [100, "0.14"], [100, "0.12"]]
    elif change == "empty tiers":
        doc["fees"]["maker"] = []
    elif change == "zero tick":
        doc["pair"][0]["tick_size"] = "0"
    elif change == "duplicate pair":
        doc["pair"].append(dict(doc["pair"][0]))
    return doc


@pytest.mark.parametrize(
    "change",
    [
        "duplicate asset",
        "unknown base",
        "unknown quote",
        "tiers not from 0",
        "tiers not increasing",
        "empty tiers",
        "zero tick",
        "duplicate pair",
    ],
)
def test_inconsistent_config_is_refused(change: str) -> None:
    with pytest.raises(ConfigError):
        build_config(_break(change))


def test_tick_finer_than_pair_decimals_is_refused() -> None:
    doc = minimal_doc()
    doc["pair"][0]["tick_size"] = "0.05"
    with pytest.raises(ValueError):
        build_config(doc)


def test_ordermin_finer_than_lot_decimals_is_refused() -> None:
    doc = minimal_doc()
    doc["pair"][0]["ordermin"] = "0.000000001"
    with pytest.raises(ValueError):
        build_config(doc)
