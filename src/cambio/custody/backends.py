"""Choosing the custody backend: ``cambio serve --custody none|sim|MODULE:CLASS``.

* ``none``: no wallet. Deposit addresses are handed out, the operator credits what
  arrives and completes or returns withdrawals by hand (``cambio admin ...``).
* ``sim``: the simulated chain (cambio.custody.simchain) in DIR/simchain.sqlite.
* ``MODULE:CLASS``: an operator's own adapter (a node, a custody provider's API),
  constructed as ``CLASS(data_dir, config)``; it must implement CustodyAdapter.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import cast

from cambio.custody.adapter import CustodyAdapter
from cambio.custody.simchain import FILE, SimChain
from cambio.model.config import MarketConfig


def networks(config: MarketConfig) -> dict[str, str]:
    """Asset id -> network, for the assets that have one (fiat has none)."""
    return {a.id: a.network for a in config.assets if a.network}


def open_simchain(root: Path, config: MarketConfig, block_s: float = 5.0) -> SimChain:
    return SimChain(root / FILE, networks(config), block_s)


def open_custody(
    kind: str, root: Path, config: MarketConfig, block_s: float = 5.0
) -> CustodyAdapter | None:
    if kind == "none":
        return None
    if kind == "sim":
        return open_simchain(root, config, block_s)
    module, _, name = kind.partition(":")
    if not module or not name:
        raise ValueError(f"custody {kind!r}: none, sim, or MODULE:CLASS")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"custody {kind!r}: {exc}") from None
    return cast(CustodyAdapter, cls(root, config))
