"""`cambio simchain`: the outside world of the simulated chain (``serve --custody sim``).

Pay into a deposit address as a customer's wallet would, mine blocks, top up the hot
wallet from cold storage, make payouts to an address fail, and look at the chain. It
works on DATA/simchain.sqlite directly, beside a running server or without one.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from cambio.cli_common import DATA_OPTION, existing
from cambio.custody.adapter import CustodyError
from cambio.custody.backends import open_simchain
from cambio.custody.simchain import FILE, SimChain
from cambio.model.decimals import DecimalFormatError, format_units, to_units


def _chain(data_dir: Path) -> SimChain:
    data = existing(data_dir)
    if not (data.root / FILE).exists():
        raise click.ClickException(
            f"{data_dir} has no simulated chain: start the server with --custody sim (or --demo)"
        )
    return open_simchain(data.root, data.config())


def _units(data_dir: Path, asset: str, amount: str) -> tuple[str, int]:
    config = existing(data_dir).config()
    try:
        spec = config.asset(asset)
        return spec.id, to_units(amount, spec.units)
    except KeyError:
        raise click.BadParameter(f"unknown asset {asset!r}", param_hint="ASSET") from None
    except DecimalFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="AMOUNT") from None


@click.group()
def simchain() -> None:
    """The simulated chain's outside world: pay in, mine, fund, fail, status.

    \b
    A demo deposit, start to finish:
      cambio serve --data D --custody sim --chain-block-s 0 &
      (a trader asks DepositAddresses for XBT: bc1q...)
      cambio simchain --data D pay bc1q... 0.5 --asset XBT
      cambio simchain --data D mine 3      # XBT needs 3 confirmations
    The funding worker credits it within a second; DepositStatus shows Success.
    """


@simchain.command()
@DATA_OPTION
@click.argument("address")
@click.argument("amount")
@click.option("--asset", required=True, help="The asset of the address (Kraken id or altname).")
def pay(data_dir: Path, address: str, amount: str, asset: str) -> None:
    """Pay AMOUNT (a decimal) into the exchange's deposit ADDRESS; prints the txid."""
    _, units = _units(data_dir, asset, amount)
    chain = _chain(data_dir)
    try:
        txid = chain.pay_in(address, units)
    except CustodyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"txid": txid, "in_mempool": True}))


@simchain.command()
@DATA_OPTION
@click.argument("blocks", type=click.IntRange(min=1), default=1)
def mine(data_dir: Path, blocks: int) -> None:
    """Mine BLOCKS blocks now (the first takes the mempool); prints the height."""
    click.echo(json.dumps({"height": _chain(data_dir).mine(blocks)}))


@simchain.command()
@DATA_OPTION
@click.argument("asset")
@click.argument("amount")
def fund(data_dir: Path, asset: str, amount: str) -> None:
    """Move AMOUNT of ASSET from cold storage into the hot wallet, so that withdrawals of
    funds credited off-chain (cambio admin account deposit) can be paid."""
    asset_id, units = _units(data_dir, asset, amount)
    click.echo(json.dumps({"txid": _chain(data_dir).fund(asset_id, units)}))


@simchain.command()
@DATA_OPTION
@click.argument("address")
@click.option("--reason", default="rejected by the network", show_default=True)
def fail(data_dir: Path, address: str, reason: str) -> None:
    """Make every payout to ADDRESS drop from the mempool at the next block (the worker
    then returns the withdrawal to its owner)."""
    _chain(data_dir).fail_address(address, reason)
    click.echo(json.dumps({"failing": address, "reason": reason}))


@simchain.command()
@DATA_OPTION
def status(data_dir: Path) -> None:
    """Height and, per asset, the hot wallet's balance, mempool deposits and payouts."""
    chain = _chain(data_dir)
    config = existing(data_dir).config()
    summary = chain.summary()
    for asset, value in summary.items():
        if isinstance(value, dict):
            value["balance"] = format_units(int(value["balance"]), config.asset(asset).units)
    click.echo(json.dumps(summary, indent=2))
