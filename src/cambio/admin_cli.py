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

from cambio.api.kraken.limits import DEFAULT_TIER, TIERS


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

    def call(self, path: str, body: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        """POST `body` (GET when None) and return the result, or exit with the error."""
        try:
            if body is None:
                reply = httpx.get(self.url + path, headers=self.headers, timeout=timeout)
            else:
                reply = httpx.post(
                    self.url + path, json=body, headers=self.headers, timeout=timeout
                )
        except httpx.TransportError as exc:
            raise click.ClickException(f"cannot reach the server at {self.url}: {exc}") from None
        answer = reply.json()
        if answer.get("error"):
            raise click.ClickException(", ".join(answer["error"]))
        return answer["result"]


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _account(value: str) -> int | str:
    return int(value) if value.isascii() and value.isdigit() else value


PERMISSIONS_HELP = (
    "Comma-separated: query_funds, query_orders, trade, withdraw. "
    "[default: query_funds,query_orders,trade]"
)
TIER_HELP = (
    "Rate limits, as Kraken's verification tiers (starter, intermediate, pro); unlimited "
    "for the operator's own market makers and load tests."
)


@click.group(short_help="Operator commands for a running server (accounts, funds, modes).")
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
      cambio admin account tier alice intermediate
      cambio admin key create alice --permissions query_funds,query_orders
      cambio admin key revoke <api_key>
      cambio admin address add alice XBT cold bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh
      cambio admin account totp enable alice
      cambio admin account totp disable alice --reason "lost phone, identity checked"
      cambio admin withdrawal list
      cambio admin withdrawal complete <refid> --txid <network txid>
      cambio admin mode set cancel_only --pair XBTUSD --reason "price feed down"
      cambio admin funding set XBT --withdrawals off --reason "wallet maintenance"
      cambio admin halt --reason "engine upgrade"
      cambio admin resume --staged --reason "upgrade done"
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
@click.option("--tier", type=click.Choice(list(TIERS)), default=DEFAULT_TIER, show_default=True,
              help=TIER_HELP)  # fmt: skip
@click.pass_obj
def account_create(
    data_dir: Path, name: str, deposits: tuple[str, ...], permissions: str, tier: str
) -> None:
    """Create account NAME with an API key; print account, api_key and api_secret."""
    funds: dict[str, str] = {}
    for item in deposits:
        asset, sep, amount = item.partition("=")
        if not sep or not asset or not amount:
            raise click.BadParameter(f"{item!r}: expected ASSET=AMOUNT", param_hint="--deposit")
        funds[asset] = amount
    body: dict[str, Any] = {"name": name, "deposits": funds, "tier": tier}
    if permissions:
        body["permissions"] = permissions
    _echo(Admin(data_dir).call("/v1/accounts", body))


@account.command("tier")
@click.argument("account_ref", metavar="ACCOUNT")
@click.argument("tier", type=click.Choice(list(TIERS)))
@click.pass_obj
def account_tier(data_dir: Path, account_ref: str, tier: str) -> None:
    """Move ACCOUNT (a name or an id) to rate-limit TIER, effective at once."""
    _echo(
        Admin(data_dir).call("/v1/accounts/tier", {"account": _account(account_ref), "tier": tier})
    )


@account.command("deposit")
@click.argument("account_ref", metavar="ACCOUNT")
@click.argument("asset")
@click.argument("amount")
@click.pass_obj
def account_deposit(data_dir: Path, account_ref: str, asset: str, amount: str) -> None:
    """Credit ACCOUNT (a name or an id) with AMOUNT of ASSET."""
    body = {"account": _account(account_ref), "asset": asset, "amount": amount}
    _echo(Admin(data_dir).call("/v1/deposits", body))


@account.group()
def totp() -> None:
    """The account's second factor: a TOTP code (authenticator app) to withdraw and to
    change withdrawal addresses."""


@totp.command("enable")
@click.argument("account_ref", metavar="ACCOUNT")
@click.pass_obj
def totp_enable(data_dir: Path, account_ref: str) -> None:
    """Turn TOTP on for ACCOUNT; print its secret and otpauth:// URI (hand them to the
    holder only, for their authenticator app; they are not shown again)."""
    _echo(Admin(data_dir).call("/v1/accounts/totp", {"account": _account(account_ref)}))


@totp.command("disable")
@click.argument("account_ref", metavar="ACCOUNT")
@click.option("--reason", required=True, help="Why (kept with the account, and logged).")
@click.pass_obj
def totp_disable(data_dir: Path, account_ref: str, reason: str) -> None:
    """Turn TOTP off for ACCOUNT (e.g. a lost phone, once the holder is verified)."""
    body = {"account": _account(account_ref), "reason": reason}
    _echo(Admin(data_dir).call("/v1/accounts/totp/disable", body))


@admin.group()
def address() -> None:
    """Register the addresses an account may withdraw to."""


@address.command("add")
@click.argument("account_ref", metavar="ACCOUNT")
@click.argument("asset")
@click.argument("key_name", metavar="KEY")
@click.argument("address_text", metavar="ADDRESS")
@click.option("--otp", metavar="CODE", help="The holder's current TOTP code: required when "
              "the account has TOTP on (or the server requires it).")  # fmt: skip
@click.pass_obj
def address_add(
    data_dir: Path, account_ref: str, asset: str, key_name: str, address_text: str,
    otp: str | None,
) -> None:  # fmt: skip
    """Let ACCOUNT withdraw ASSET to ADDRESS, named KEY (the `key` of Kraken's Withdraw)."""
    body = {"account": _account(account_ref), "asset": asset, "key": key_name,
            "address": address_text}  # fmt: skip
    if otp is not None:
        body["otp"] = otp
    _echo(Admin(data_dir).call("/v1/withdraw-addresses", body))


@admin.group()
def withdrawal() -> None:
    """Settle withdrawals: each holds its funds until completed or returned."""


@withdrawal.command("list")
@click.option("--all", "everything", is_flag=True, help="Every withdrawal, not only pending.")
@click.pass_obj
def withdrawal_list(data_dir: Path, everything: bool) -> None:
    """Withdrawals waiting to be sent (newest first)."""
    _echo(Admin(data_dir).call("/v1/withdrawals?status=" + ("" if everything else "Pending")))


@withdrawal.command("complete")
@click.argument("refid")
@click.option("--txid", default="", help="The network's transaction id, shown to the client.")
@click.pass_obj
def withdrawal_complete(data_dir: Path, refid: str, txid: str) -> None:
    """REFID was sent: debit the held amount and its fee."""
    _echo(Admin(data_dir).call("/v1/withdrawals/complete", {"refid": refid, "txid": txid}))


@withdrawal.command("return")
@click.argument("refid")
@click.option("--reason", default="returned by the operator", show_default=True)
@click.pass_obj
def withdrawal_return(data_dir: Path, refid: str, reason: str) -> None:
    """REFID will not be sent: release the held funds to the account."""
    _echo(Admin(data_dir).call("/v1/withdrawals/return", {"refid": refid, "reason": reason}))


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


# ---------------------------------------------------------------------- controls
REASON = click.option(
    "--reason",
    required=True,
    help="Why, in a line: journaled with the change and shown on the status page.",
)
ON_OFF = click.Choice(["on", "off"])
STAGE = click.IntRange(0, 7 * 86400)  # seconds a step of a staged reopening may last


def _on(value: str | None) -> bool | None:
    return None if value is None else value == "on"


@admin.group()
def mode() -> None:
    """Trading modes: per market or for the whole exchange."""


@mode.command("set")
@click.argument("mode_name", metavar="MODE",
                type=click.Choice(["online", "post_only", "limit_only", "cancel_only",
                                   "maintenance"]))  # fmt: skip
@click.option("--pair", help="A market (Kraken id or altname: XXBTZUSD or XBTUSD); without "
              "it, the global mode, which every market follows when it is stricter.")  # fmt: skip
@REASON
@click.pass_obj
def mode_set(data_dir: Path, mode_name: str, pair: str | None, reason: str) -> None:
    """Set MODE: online, post_only (only post-only limit orders), limit_only,
    cancel_only (only cancels), maintenance (nothing; orders stay)."""
    body: dict[str, Any] = {"mode": mode_name, "reason": reason}
    if pair is not None:
        body["pair"] = pair
    _echo(Admin(data_dir).call("/v1/mode", body))


@admin.group()
def funding() -> None:
    """Deposits and withdrawals, per asset."""


@funding.command("set")
@click.argument("asset")
@click.option("--deposits", type=ON_OFF, help="Accept deposits of ASSET or not.")
@click.option("--withdrawals", type=ON_OFF, help="Allow withdrawals of ASSET or not.")
@REASON
@click.pass_obj
def funding_set(
    data_dir: Path, asset: str, deposits: str | None, withdrawals: str | None, reason: str
) -> None:
    """Turn deposits and/or withdrawals of ASSET (XBT or XXBT, or all) on or off."""
    if deposits is None and withdrawals is None:
        raise click.UsageError("give --deposits and/or --withdrawals")
    body = {"asset": asset, "deposits": _on(deposits), "withdrawals": _on(withdrawals),
            "reason": reason}  # fmt: skip
    _echo(Admin(data_dir).call("/v1/funding", body))


@admin.command()
@REASON
@click.pass_obj
def halt(data_dir: Path, reason: str) -> None:
    """Stop the exchange in one journaled command: every market to maintenance,
    withdrawals of every asset off. Every order, balance and pending withdrawal stays
    exactly as it is. Undo with `resume`."""
    _echo(Admin(data_dir).call("/v1/halt", {"reason": reason}))


@admin.command()
@click.option("--staged", is_flag=True, help="Reopen as after maintenance: cancel_only, then "
              "post_only, then online.")  # fmt: skip
@click.option("--cancel-only-for", "cancel_only_s", type=STAGE, default=300,
              show_default=True, help="With --staged: seconds in cancel_only.")  # fmt: skip
@click.option("--post-only-for", "post_only_s", type=STAGE, default=300,
              show_default=True, help="With --staged: seconds in post_only.")  # fmt: skip
@REASON
@click.pass_obj
def resume(data_dir: Path, staged: bool, cancel_only_s: int, post_only_s: int, reason: str) -> None:
    """Reopen trading after a halt (online at once, or --staged). Withdrawals stay off
    until turned on: `cambio admin funding set ASSET --withdrawals on --reason ...`."""
    body = {"reason": reason, "staged": staged, "cancel_only_s": cancel_only_s,
            "post_only_s": post_only_s}  # fmt: skip
    _echo(Admin(data_dir).call("/v1/resume", body))


# ---------------------------------------------------------------------- fee promotions
@admin.group()
def promo() -> None:
    """Fee promotions: rates capped for the trades they cover, for a time."""


@promo.command("create")
@click.option("--maker", required=True, help="Maker fee in percent while it runs (0: waived).")
@click.option("--taker", required=True, help="Taker fee in percent while it runs.")
@click.option("--until", "until", required=True,
              help="When it ends: an ISO time with its zone, or month-end.")  # fmt: skip
@click.option("--start", help="When it starts (ISO time with zone). [default: now]")
@click.option("--scope", type=click.Choice(["spot", "margin", "all"]), default="spot",
              show_default=True, help="Which trades it covers.")  # fmt: skip
@click.option("--pairs", default="", help="Comma-separated markets. [default: all]")
@click.option("--accounts", default="", help="Comma-separated accounts (names or ids). "
              "[default: all]")  # fmt: skip
@REASON
@click.pass_obj
def promo_create(
    data_dir: Path,
    maker: str,
    taker: str,
    until: str,
    start: str | None,
    scope: str,
    pairs: str,
    accounts: str,
    reason: str,
) -> None:
    """Create a fee promotion; print it with its id.

    \b
    Example (the compensation after an outage: spot fees waived until month end):
      cambio admin promo create --maker 0 --taker 0 --until month-end \\
        --reason "compensation for the 2026-11-20 outage"
    """
    body: dict[str, Any] = {"maker": maker, "taker": taker, "until": until, "scope": scope,
                            "reason": reason}  # fmt: skip
    if start:
        body["start"] = start
    if pairs:
        body["pairs"] = [p.strip() for p in pairs.split(",") if p.strip()]
    if accounts:
        body["accounts"] = [_account(a.strip()) for a in accounts.split(",") if a.strip()]
    _echo(Admin(data_dir).call("/v1/promotions", body))


@promo.command("list")
@click.pass_obj
def promo_list(data_dir: Path) -> None:
    """Every promotion: state (scheduled, active, ended), rates, times, scope."""
    _echo(Admin(data_dir).call("/v1/promotions"))


@promo.command("end")
@click.argument("promo_id", metavar="ID")
@REASON
@click.pass_obj
def promo_end(data_dir: Path, promo_id: str, reason: str) -> None:
    """End promotion ID now."""
    _echo(Admin(data_dir).call("/v1/promotions/end", {"promo_id": promo_id, "reason": reason}))


# ---------------------------------------------------------------------- compensation
COMPENSATE_TIMEOUT = 3600  # seconds: the server reads the whole journal


@admin.command()
@click.option("--basis", type=click.Choice(["waived", "fees-paid"]), required=True,
              help="waived: what each account would have paid at its fee tier without "
              "promotions, minus what it paid (with --promotion: what that promotion alone "
              "took off). fees-paid: the trading fees each account paid (a refund).")  # fmt: skip
@click.option("--from", "start", metavar="TIME",
              help="Start of the window (ISO time with its zone), included.")  # fmt: skip
@click.option("--until", metavar="TIME",
              help="End of the window (ISO time with its zone), excluded.")  # fmt: skip
@click.option("--promotion", metavar="ID", help="Only the trades this promotion covered "
              "(its time, pairs, accounts, scope); the window defaults to its time.")  # fmt: skip
@click.option("--scope", type=click.Choice(["spot", "margin", "all"]), default="all",
              show_default=True, help="Which trades count (no margin trading exists yet: "
              "margin selects nothing).")  # fmt: skip
@click.option("--pair", "pairs", multiple=True, metavar="PAIR",
              help="Only this market (XBTUSD or XXBTZUSD). Repeatable. [default: all]")  # fmt: skip
@click.option("--account", "accounts", multiple=True, metavar="ACCOUNT",
              help="Only this account (a name or an id). Repeatable. [default: all]")  # fmt: skip
@click.option("--percent", default="100", show_default=True, metavar="N",
              help="Pay this percentage of each amount (rounded down).")  # fmt: skip
@click.option("--credit", is_flag=True,
              help="Pay the amounts (without it: a dry run that only computes).")  # fmt: skip
@click.option("--reason", help="With --credit: the ledger entry's reference the trader "
              "sees in Ledgers (type credit).")  # fmt: skip
@click.option("--id", "comp_id", metavar="ID", help="Name this compensation. [default: "
              "derived from --basis, --from, --until and --promotion]")  # fmt: skip
@click.pass_obj
def compensate(
    data_dir: Path,
    basis: str,
    start: str | None,
    until: str | None,
    promotion: str | None,
    scope: str,
    pairs: tuple[str, ...],
    accounts: tuple[str, ...],
    percent: str,
    credit: bool,
    reason: str | None,
    comp_id: str | None,
) -> None:
    """What an outage or a fee promotion cost each account, from the journal; with
    --credit, pay it as ledger entries (type credit) from the fee account.

    Prints, per account and asset, the amount (integer units of the asset and an exact
    decimal string), the number of its trades counted, the totals, and with --credit what
    became of each credit: credited (with the seq of its command), already_paid or
    refused (e.g. the fee account lacks the funds: top it up and run again).

    Each credit is paid once: its ref is the compensation id, the account and the asset,
    and the engine refuses a ref it has seen. Running the same compensation again (same
    --basis, --from, --until, --promotion, or the same --id) pays nobody twice, even
    narrowed to other --pair/--account/--scope or another --percent. Credit only a
    window that is over (--until in the past, or a promotion that has ended).

    \b
    Examples:
      # what the spot-fee waiver until month end was worth to each account
      cambio admin compensate --basis waived --promotion promo-3fa9c1d2
      # refund the fees paid during a degraded period, half of them
      cambio admin compensate --basis fees-paid \\
        --from 2026-11-20T02:00Z --until 2026-11-22T02:00Z --percent 50
      cambio admin compensate --basis fees-paid \\
        --from 2026-11-20T02:00Z --until 2026-11-22T02:00Z --percent 50 \\
        --credit --reason "refund: degraded matching 20-22 Nov"
    """
    if credit and not (reason or "").strip():
        raise click.UsageError("--credit needs --reason (the trader sees it in Ledgers)")
    if promotion is None and (start is None or until is None):
        raise click.UsageError("give --from and --until, or --promotion (or both)")
    body: dict[str, Any] = {"basis": basis, "scope": scope, "percent": percent,
                            "credit": credit}  # fmt: skip
    for name, value in (("from", start), ("until", until), ("promotion", promotion),
                        ("reason", reason), ("id", comp_id)):  # fmt: skip
        if value:
            body[name] = value
    if pairs:
        body["pairs"] = list(pairs)
    if accounts:
        body["accounts"] = [_account(a) for a in accounts]
    _echo(Admin(data_dir).call("/v1/compensate", body, timeout=COMPENSATE_TIMEOUT))
