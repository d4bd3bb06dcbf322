"""`cambio status-page` (the status service's process) and `cambio status ...` (the
operator's incidents, maintenances and subscribers).

The operator's commands write to the status store directly (DATA/status/status.db), so
they work while the exchange is down and whether or not the page is running; the running
page delivers the notifications they queue within a second.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import click

from cambio.cli_common import DATA_OPTION, existing
from cambio.model.times import zoned
from cambio.status.model import IMPACTS, INCIDENT_STATUSES, PageInfo, iso
from cambio.status.store import Row, StatusStore

DIRNAME = "status"


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _cadence(values: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for v in values:
        impact, _, minutes = v.partition("=")
        if impact not in IMPACTS or not minutes.replace(".", "", 1).isdigit():
            raise click.BadParameter(f"{v!r}: IMPACT=MINUTES, IMPACT one of {', '.join(IMPACTS)}")
        out[impact] = float(minutes) * 60
    return out


@click.command("status-page", short_help="Run the status page (its own process and store).")
@DATA_OPTION
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8081, show_default=True, help="0: any free port.")
@click.option("--name", default="cambio status", show_default=True, help="The page's title.")
@click.option("--public-url", help="The page's address for links in mail and feeds. "
              "[default: where it listens]")  # fmt: skip
@click.option("--stale-s", type=click.FloatRange(min=1), default=15.0, show_default=True,
              help="Seconds without a heartbeat before the exchange counts as down and "
              "an incident opens by itself.")  # fmt: skip
@click.option("--cadence-minutes", type=click.FloatRange(min=1), default=30.0,
              show_default=True, help="The promised time between updates of an open "
              "incident or a maintenance under way; when nobody posts, the page does.")  # fmt: skip
@click.option("--cadence", "cadence_by", multiple=True, metavar="IMPACT=MINUTES",
              help="Another cadence for one impact, e.g. critical=15. Repeatable.")  # fmt: skip
@click.option("--smtp-host", help="Send subscribers' email through this SMTP server.")
@click.option("--smtp-port", type=int, default=25, show_default=True)
@click.option("--smtp-user")
@click.option("--smtp-password-env", metavar="VAR", help="Read the SMTP password from VAR.")
@click.option("--smtp-starttls", is_flag=True)
@click.option("--sender", default="status@cambio.invalid", show_default=True,
              help="The From: of subscribers' email.")  # fmt: skip
@click.option("--cache-s", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds a page or JSON answer is served from memory (0: never): the "
              "crowd an incident brings reads memory, not the store.")  # fmt: skip
def status_page(data_dir: Path, host: str, port: int, name: str, public_url: str | None,
                stale_s: float, cadence_minutes: float, cadence_by: tuple[str, ...],
                smtp_host: str | None, smtp_port: int, smtp_user: str | None,
                smtp_password_env: str | None, smtp_starttls: bool,
                sender: str, cache_s: float) -> None:  # fmt: skip
    """Serve the status page of the exchange in DATA, until SIGTERM or Ctrl-C.

    \b
    It reads DATA/heartbeat.json and the journal (read-only) and never asks the
    exchange anything, so it stays up while the exchange is down: no heartbeat
    for --stale-s seconds opens an incident by itself. `cambio serve` starts one
    (DATA/serve.json: status_url, status_pid); run it yourself to keep it up
    across planned stops (`serve --status-page external`).

    \b
    Serves: /  (HTML)   /api/v2/summary.json ... (Atlassian Statuspage's JSON)
            /history.atom  /history.rss   /subscribe (email, double opt-in)
    """
    import os

    import uvicorn

    from cambio.status.automation import Settings
    from cambio.status.notify.outbox import SmtpSettings
    from cambio.status.service import StatusOptions, StatusService
    from cambio.status.web.app import status_app

    data = existing(data_dir)
    smtp = None
    if smtp_host:
        password = os.environ.get(smtp_password_env) if smtp_password_env else None
        smtp = SmtpSettings(smtp_host, smtp_port, smtp_user, password, smtp_starttls)
    settings = Settings(stale_s=stale_s, cadence_s=cadence_minutes * 60,
                        cadence_by_impact=_cadence(cadence_by))  # fmt: skip
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    sock.listen(128)
    bound = sock.getsockname()
    url = f"http://{bound[0]}:{bound[1]}" if ":" not in host else f"http://[{bound[0]}]:{bound[1]}"
    options = StatusOptions(name=name, public_url=public_url, settings=settings, smtp=smtp,
                            sender=sender)  # fmt: skip
    service = StatusService(data.root, data.config(), url, options)
    n = service.notifications
    app = status_app(service.store, service.page, service.clock, n.subscribe_email,
                     n.confirm, n.unsubscribe, cache_s=cache_s)  # fmt: skip
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        worker = loop.create_task(service.run())
        serving = loop.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        service.write_info(url)
        print(f"cambio status page for {data.root}: {url}", file=sys.stderr, flush=True)
        await serving
        worker.cancel()
        service.remove_info()
        service.store.close()

    server.capture_signals = _no_signals  # type: ignore[method-assign]
    asyncio.run(main())


def _no_signals() -> Any:
    import contextlib

    return contextlib.nullcontext()


# ---------------------------------------------------------------------- operator commands
def _store(data_dir: Path) -> StatusStore:
    return StatusStore(existing(data_dir).root / DIRNAME / "status.db")


def _notifications(store: StatusStore) -> Any:
    from cambio.status.notify.outbox import Notifications

    page = store.get("page") or {}
    info = PageInfo(store.get("page_id") or "", page.get("name", "cambio status"),
                    page.get("url", ""))  # fmt: skip
    return Notifications(store, info, None, "status@cambio.invalid")


def _announce(store: StatusStore, incident_id: str, now: float) -> Row:
    incident = store.incident(incident_id)
    assert incident is not None
    _notifications(store).incident_updated(incident, now)
    return incident


def _when(text: str, name: str) -> float:
    try:
        return zoned(text).timestamp()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


def _shown(incident: Row) -> dict[str, Any]:
    keys = ("id", "kind", "name", "status", "impact", "created_at", "scheduled_for",
            "scheduled_until", "next_update_at")  # fmt: skip
    out = {k: incident.get(k) for k in keys}
    for k in ("created_at", "scheduled_for", "scheduled_until", "next_update_at"):
        out[k] = iso(out[k])
    out["components"] = [c["key"] for c in incident.get("components", [])]
    out["updates"] = len(incident.get("updates", []))
    return out


def _components_known(store: StatusStore, keys: tuple[str, ...]) -> list[str]:
    known = {c["key"] for c in store.components()}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise click.BadParameter(
            f"unknown {', '.join(unknown)} (see `cambio status components`)",
            param_hint="--component",
        )
    return list(keys)


@click.group()
@DATA_OPTION
@click.pass_context
def status(ctx: click.Context, data_dir: Path) -> None:
    """Incidents, maintenances and subscribers of the status page.

    \b
    Examples:
      cambio status --data DIR incident open --name "Slow withdrawals" \\
        --body "Bitcoin withdrawals are delayed; funds are safe." \\
        --component withdrawals:XXBT --impact minor
      cambio status incident update ID --status identified --body "..."
      cambio status incident resolve ID --body "Withdrawals are flowing again."
      cambio status maintenance schedule --name "Database upgrade" \\
        --start 2026-12-01T02:00Z --end 2026-12-01T03:00Z --body "..."
      cambio status subscriber add-webhook https://ops.example/hooks/status
    Every update promises the next one (--next-update-minutes, 30): when none
    comes by then, the page posts the live figures itself.
    """
    ctx.obj = data_dir


COMPONENT = click.option("--component", "components", multiple=True, metavar="KEY",
                         help="An affected component (market:XXBTZUSD, withdrawals:XXBT, "
                         "api:rest...; `cambio status components`). Repeatable.")  # fmt: skip
NEXT = click.option("--next-update-minutes", type=click.FloatRange(min=1), default=30.0,
                    show_default=True, help="When the next update is promised.")  # fmt: skip


@status.command()
@click.pass_obj
def components(data_dir: Path) -> None:
    """The page's components: key, name, status."""
    store = _store(data_dir)
    _echo([{"key": c["key"], "name": c["name"], "status": c["status"]}
           for c in store.components() if not c["is_group"]])  # fmt: skip


@status.group()
def incident() -> None:
    """Open, update, resolve incidents; publish postmortems."""


@incident.command("open")
@click.pass_obj
@click.option("--name", required=True, help="The title customers see.")
@click.option("--body", required=True, help="What happened, what it means for customers.")
@click.option("--status", "state", type=click.Choice(INCIDENT_STATUSES[:3]),
              default="investigating", show_default=True)  # fmt: skip
@click.option("--impact", type=click.Choice(IMPACTS), default="minor", show_default=True)
@COMPONENT
@NEXT
def incident_open(data_dir: Path, name: str, body: str, state: str, impact: str,
                  components: tuple[str, ...], next_update_minutes: float) -> None:  # fmt: skip
    """Open an incident; subscribers are told at once."""
    store, now = _store(data_dir), time.time()
    keys = _components_known(store, components)
    fields = {"kind": "incident", "name": name, "status": state, "impact": impact,
              "next_update_at": now + next_update_minutes * 60}  # fmt: skip
    iid = store.create_incident(fields, body, keys, now)
    _echo(_shown(_announce(store, iid, now)))


def _existing(store: StatusStore, incident_id: str, kind: str) -> Row:
    found = store.incident(incident_id)
    if found is None or found["kind"] != kind:
        raise click.ClickException(f"no {kind} {incident_id}")
    return found


@incident.command("update")
@click.pass_obj
@click.argument("incident_id")
@click.option("--status", "state", type=click.Choice(INCIDENT_STATUSES[:4]), required=True)
@click.option("--body", required=True)
@COMPONENT
@NEXT
def incident_update(data_dir: Path, incident_id: str, state: str, body: str,
                    components: tuple[str, ...], next_update_minutes: float) -> None:  # fmt: skip
    """Post an update to an incident's timeline."""
    store, now = _store(data_dir), time.time()
    _existing(store, incident_id, "incident")
    store.link_components(incident_id, _components_known(store, components))
    nxt = None if state == "resolved" else now + next_update_minutes * 60
    store.add_update(incident_id, state, body, now, fields={"next_update_at": nxt})
    _echo(_shown(_announce(store, incident_id, now)))


@incident.command("resolve")
@click.pass_obj
@click.argument("incident_id")
@click.option("--body", required=True, help="Recovery confirmed; data lost: none, or what.")
def incident_resolve(data_dir: Path, incident_id: str, body: str) -> None:
    """Resolve an incident."""
    store, now = _store(data_dir), time.time()
    _existing(store, incident_id, "incident")
    store.add_update(incident_id, "resolved", body, now, fields={"next_update_at": None})
    _echo(_shown(_announce(store, incident_id, now)))


@incident.command("postmortem")
@click.pass_obj
@click.argument("incident_id")
@click.option("--body", required=True, help="The postmortem (plain text).")
def incident_postmortem(data_dir: Path, incident_id: str, body: str) -> None:
    """Publish a resolved incident's postmortem."""
    store, now = _store(data_dir), time.time()
    found = _existing(store, incident_id, "incident")
    if found["status"] not in ("resolved", "postmortem"):
        raise click.ClickException("resolve the incident first")
    store.set_fields(incident_id, postmortem_body=body, postmortem_published_at=now,
                     status="postmortem", updated_at=now)  # fmt: skip
    _echo(_shown(_announce(store, incident_id, now)))


@status.group()
def maintenance() -> None:
    """Schedule, start and complete maintenances."""


@maintenance.command("schedule")
@click.pass_obj
@click.option("--name", required=True)
@click.option("--start", "start_at", required=True, help="ISO time with its zone.")
@click.option("--end", "end_at", required=True, help="Expected end, ISO time with its zone.")
@click.option("--body", required=True, help="What it is for and what customers will see.")
@COMPONENT
@click.option("--no-reminder", is_flag=True, help="No reminder 60 minutes before.")
@click.option("--no-auto-start", is_flag=True, help="Start it by hand, not at --start.")
@click.option("--no-auto-complete", is_flag=True, help="Complete it by hand, not at --end.")
def maintenance_schedule(data_dir: Path, name: str, start_at: str, end_at: str, body: str,
                         components: tuple[str, ...], no_reminder: bool, no_auto_start: bool,
                         no_auto_complete: bool) -> None:  # fmt: skip
    """Announce a maintenance window; subscribers are told now and reminded before."""
    store, now = _store(data_dir), time.time()
    start, end = _when(start_at, "--start"), _when(end_at, "--end")
    if end <= start:
        raise click.BadParameter("must be after --start", param_hint="--end")
    fields = {"kind": "maintenance", "name": name, "status": "scheduled",
              "impact": "maintenance", "scheduled_for": start, "scheduled_until": end,
              "scheduled_remind_prior": not no_reminder,
              "scheduled_auto_in_progress": not no_auto_start,
              "scheduled_auto_completed": not no_auto_complete}  # fmt: skip
    iid = store.create_incident(fields, body, _components_known(store, components), now)
    _echo(_shown(_announce(store, iid, now)))


@maintenance.command("start")
@click.pass_obj
@click.argument("maintenance_id")
@click.option("--body", default="The maintenance has started.", show_default=True)
@NEXT
def maintenance_start(data_dir: Path, maintenance_id: str, body: str,
                      next_update_minutes: float) -> None:  # fmt: skip
    """Start a maintenance now."""
    store, now = _store(data_dir), time.time()
    _existing(store, maintenance_id, "maintenance")
    store.add_update(maintenance_id, "in_progress", body, now,
                     fields={"next_update_at": now + next_update_minutes * 60})  # fmt: skip
    _echo(_shown(_announce(store, maintenance_id, now)))


@maintenance.command("update")
@click.pass_obj
@click.argument("maintenance_id")
@click.option("--status", "state", type=click.Choice(["scheduled", "in_progress", "verifying"]),
              required=True)  # fmt: skip
@click.option("--body", required=True)
@click.option("--end", "end_at", help="A new expected end (ISO time with its zone).")
@NEXT
def maintenance_update(data_dir: Path, maintenance_id: str, state: str, body: str,
                       end_at: str | None, next_update_minutes: float) -> None:  # fmt: skip
    """Post an update (and perhaps a new expected end) to a maintenance."""
    store, now = _store(data_dir), time.time()
    _existing(store, maintenance_id, "maintenance")
    fields: Row = {"next_update_at": now + next_update_minutes * 60}
    if end_at:
        fields["scheduled_until"] = _when(end_at, "--end")
    store.add_update(maintenance_id, state, body, now, fields=fields)
    _echo(_shown(_announce(store, maintenance_id, now)))


@maintenance.command("complete")
@click.pass_obj
@click.argument("maintenance_id")
@click.option("--body", default="The maintenance is complete.", show_default=True)
def maintenance_complete(data_dir: Path, maintenance_id: str, body: str) -> None:
    """Complete a maintenance."""
    store, now = _store(data_dir), time.time()
    _existing(store, maintenance_id, "maintenance")
    store.add_update(maintenance_id, "completed", body, now, fields={"next_update_at": None})
    _echo(_shown(_announce(store, maintenance_id, now)))


@status.group()
def subscriber() -> None:
    """Email and webhook subscribers."""


@subscriber.command("add-email")
@click.pass_obj
@click.argument("address")
def subscriber_email(data_dir: Path, address: str) -> None:
    """Subscribe ADDRESS: a confirmation mail goes out first (double opt-in)."""
    store = _store(data_dir)
    try:
        row = _notifications(store).subscribe_email(address, time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ADDRESS") from None
    _echo({"id": row["id"], "kind": "email", "target": row["target"],
           "confirmed": row["confirmed_at"] is not None})  # fmt: skip


@subscriber.command("add-webhook")
@click.pass_obj
@click.argument("url")
def subscriber_webhook(data_dir: Path, url: str) -> None:
    """Send Statuspage-shaped webhooks to URL, signed with the secret printed once
    (header X-Cambio-Signature: sha256=HMAC-SHA256(secret, body))."""
    store = _store(data_dir)
    try:
        row = _notifications(store).subscribe_webhook(url, time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    _echo({"id": row["id"], "kind": "webhook", "target": row["target"],
           "secret": row["secret"]})  # fmt: skip


@subscriber.command("list")
@click.pass_obj
def subscriber_list(data_dir: Path) -> None:
    """Every subscriber, confirmed or not."""
    store = _store(data_dir)
    _echo([{"id": s["id"], "kind": s["kind"], "target": s["target"],
            "confirmed": s["confirmed_at"] is not None,
            "unsubscribed": s["unsubscribed_at"] is not None}
           for s in store.subscribers(active=False)])  # fmt: skip


@subscriber.command("remove")
@click.pass_obj
@click.argument("subscriber_id")
def subscriber_remove(data_dir: Path, subscriber_id: str) -> None:
    """Unsubscribe a subscriber."""
    store = _store(data_dir)
    found = store.subscriber(subscriber_id)
    if found is None:
        raise click.ClickException(f"no subscriber {subscriber_id}")
    store.unsubscribe(found["token"], time.time())
    _echo({"id": subscriber_id, "removed": True})
