"""`cambio admin`: the operator's commands, sent to a running `cambio serve`.

It finds the server through DATA/serve.json and authenticates with DATA/admin.token, so
it works wherever the data directory is readable. Every command prints one JSON object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import httpx


class Admin:
    def __init__(self, data_dir: Path) -> None:
        try:
            info = json.loads((data_dir / "serve.json").read_text())
            token = (data_dir / "admin.token").read_text().strip()
        except FileNotFoundError:
            raise click.ClickException(
                f"no running cambio serve found in {data_dir} (start it with: cambio serve "
                f"--data {data_dir})"
            ) from None
        self.url = info["admin_url"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, path: str, body: dict[str, Any]) -> Any:
        try:
            reply = httpx.post(self.url + path, json=body, headers=self.headers, timeout=60)
        except httpx.TransportError as exc:
            raise click.ClickException(f"cannot reach the server at {self.url}: {exc}") from None
        answer = reply.json()
        if answer.get("error"):
            raise click.ClickException(", ".join(answer["error"]))
        return answer["result"]


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _account(value: str) -> int | str:
    return int(value) if value.isdigit() else value


PERMISSIONS_HELP = (
    "Comma-separated: query_funds, query_orders, trade, withdraw. "
    "[default: query_funds,query_orders,trade]"
)


@click.group(short_help="Operator commands for a running server (accounts, keys, funds).")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cambio-data"),
    show_default=True,
    help="The data directory of the running server.",
)
@click.pass_context
def admin(ctx: click.Context, data_dir: Path) -> None:
    """Operator commands, sent to the `cambio serve` running on DATA.

    \b
    Examples:
      cambio admin account create alice --deposit USD=10000 --deposit XBT=1.5
      cambio admin account deposit alice XBT 0.25
      cambio admin key create alice --permissions query_funds,query_orders
      cambio admin key revoke <api_key>
    """
    ctx.obj = data_dir


@admin.group()
def account() -> None:
    """Create accounts and fund them."""


@account.command("create")
@click.argument("name")
@click.option(
    "--deposit",
    "deposits",
    multiple=True,
    metavar="ASSET=AMOUNT",
    help="Credit the new account (asset: Kraken id or altname, e.g. XBT or XXBT; amount: "
    "a decimal string). Repeatable.",
)
@click.option("--permissions", default="", help=PERMISSIONS_HELP)
@click.pass_obj
def account_create(data_dir: Path, name: str, deposits: tuple[str, ...], permissions: str) -> None:
    """Create account NAME with an API key; print account, api_key and api_secret."""
    funds: dict[str, str] = {}
    for item in deposits:
        asset, sep, amount = item.partition("=")
        if not sep or not asset or not amount:
            raise click.BadParameter(f"{item!r}: expected ASSET=AMOUNT", param_hint="--deposit")
        funds[asset] = amount
    body: dict[str, Any] = {"name": name, "deposits": funds}
    if permissions:
        body["permissions"] = permissions
    _echo(Admin(data_dir).call("/v1/accounts", body))


@account.command("deposit")
@click.argument("account_ref", metavar="ACCOUNT")
@click.argument("asset")
@click.argument("amount")
@click.pass_obj
def account_deposit(data_dir: Path, account_ref: str, asset: str, amount: str) -> None:
    """Credit ACCOUNT (a name or an id) with AMOUNT of ASSET."""
    body = {"account": _account(account_ref), "asset": asset, "amount": amount}
    _echo(Admin(data_dir).call("/v1/deposits", body))


@admin.group()
def key() -> None:
    """Create and revoke API keys."""


@key.command("create")
@click.argument("account_ref", metavar="ACCOUNT")
@click.option("--permissions", default="", help=PERMISSIONS_HELP)
@click.pass_obj
def key_create(data_dir: Path, account_ref: str, permissions: str) -> None:
    """A new API key for ACCOUNT (a name or an id)."""
    body: dict[str, Any] = {"account": _account(account_ref)}
    if permissions:
        body["permissions"] = permissions
    _echo(Admin(data_dir).call("/v1/keys", body))


@key.command("revoke")
@click.argument("api_key")
@click.pass_obj
def key_revoke(data_dir: Path, api_key: str) -> None:
    """Revoke API_KEY at once."""
    _echo(Admin(data_dir).call("/v1/keys/revoke", {"api_key": api_key}))
