"""What every operator endpoint shares: the server's parts, body and argument parsing,
and the wrapper that answers in Kraken's envelope."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cambio.api.envelope import error, halted, ok
from cambio.api.keys import (
    DEFAULT_PERMISSIONS,
    KeyStore,
    KeyStoreError,
    SecondFactorRefused,
    check_permissions,
)
from cambio.api.kraken.funding import OTP_ERRORS
from cambio.api.kraken.history import History
from cambio.model.commands import Command, Deposit
from cambio.model.config import MarketConfig
from cambio.model.decimals import to_units
from cambio.model.events import CommandRejected
from cambio.model.times import NOT_ISO, zoned
from cambio.ops.metrics import Metrics
from cambio.ops.monitor import Monitor
from cambio.runtime.sequencer import InvalidCommand, SequencerStopped
from cambio.runtime.service import ExchangeService
from cambio.upgrade.manager import UpgradeManager, UpgradeRefused

Handler = Callable[[Request], Awaitable[Any]]


class AdminError(Exception):
    """A request the operator API refuses: answered as EGeneral:Invalid arguments."""


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """`handler`'s result in Kraken's envelope; refusals as its errors."""

    async def run(request: Request) -> Response:
        try:
            return ok(await handler(request))
        except SecondFactorRefused as exc:  # as the Kraken API answers it
            return error(OTP_ERRORS[exc.reason])
        except (AdminError, KeyStoreError, InvalidCommand) as exc:
            return error(f"EGeneral:Invalid arguments:{exc}")
        except UpgradeRefused as exc:
            return error(f"EUpgrade:{exc}")
        except SequencerStopped as exc:
            return error(*halted(exc))

    return run


async def body_of(request: Request) -> dict[str, Any]:
    try:
        value = json.loads(await request.body() or b"{}")
    except (ValueError, RecursionError) as exc:
        raise AdminError(f"body: {exc}") from None
    if not isinstance(value, dict):
        raise AdminError("body must be a JSON object")
    return value


def reason_of(body: dict[str, Any]) -> str:
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise AdminError("reason: say why, in a line the status page can show")
    return reason.strip()


def switch(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise AdminError(f"{name}: true or false")


def permissions_of(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("permissions") or list(DEFAULT_PERMISSIONS)
    if isinstance(value, str):
        value = [p for p in value.split(",") if p]
    permissions = tuple(str(p) for p in value)
    check_permissions(permissions)  # before anything is created
    return permissions


def iso_time(text: str, name: str, also: str = "") -> datetime:
    """An ISO time that names its zone (cambio.model.times.zoned), for the body's `name`;
    `also` adds what else is accepted to the message."""
    try:
        return zoned(text)
    except ValueError as exc:
        said = f"{exc}{also}" if str(exc) == NOT_ISO else str(exc)
        raise AdminError(f"{name}: {said}") from None


def instant(text: str, now: datetime, name: str) -> int:
    """An ISO time with its zone, or "month-end" (the first instant of next month, UTC),
    as ns since the epoch."""
    if text == "month-end":
        first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        when = (first + timedelta(days=32)).replace(day=1)
    else:
        when = iso_time(text, name, ", or month-end")
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


@dataclass
class AdminContext:
    """The server's parts the operator endpoints act on."""

    service: ExchangeService
    keys: KeyStore
    history: History
    upgrades: UpgradeManager | None = None
    metrics: Metrics | None = None
    monitor: Monitor | None = None
    require_2fa_withdrawals: bool = False  # serve's policy: TOTP mandatory for addresses

    @property
    def config(self) -> MarketConfig:
        return self.service.config

    def account_of(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str):
            found = self.keys.account_named(value)
            if found is not None:
                return found
        raise AdminError(f"unknown account {value!r}")

    def deposit_command(self, account: int, asset_name: str, amount: str) -> Deposit:
        try:
            asset = self.config.asset(asset_name)
        except KeyError:
            raise AdminError(f"unknown asset {asset_name!r}") from None
        try:
            units = to_units(str(amount), asset.units)
        except ValueError as exc:
            raise AdminError(f"amount: {exc}") from None
        if units <= 0:
            raise AdminError(f"amount: {amount} is not positive")
        ref = f"admin-{account}-{asset.id}-{time.time_ns()}"
        return Deposit(account=account, asset=asset.id, amount=units, ref=ref)

    async def applied(self, cmd: Command, what: str) -> int:
        """The command's seq once applied; the engine's refusal as an AdminError."""
        seq, events = await self.service.execute(cmd)
        if events and isinstance(events[0], CommandRejected):
            raise AdminError(f"{what} refused: {events[0].error}")
        return seq
