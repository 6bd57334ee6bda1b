"""Operations: ``db upgrade``, ``schedule run``, ``stats``, ``health``."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import cli_context
from cli.render import console, print_json, print_table
from store.stats import queue_stats

db = typer.Typer(no_args_is_help=True, help="The ticket store's schema.")
schedule = typer.Typer(no_args_is_help=True, help="Periodic jobs (auto-close, reminders, retries).")


def register(app: typer.Typer) -> None:
    app.add_typer(db, name="db")
    app.add_typer(schedule, name="schedule")
    app.command()(stats)
    app.command()(health)


@db.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the schema migrations (every command also does this on start)."""
    from mailgate.app import build_gateway

    settings = cli_context(ctx).settings
    gateway = build_gateway(settings)
    gateway.close()
    console.print(f"schema of {settings.store.url} is up to date")


@schedule.command("run")
def schedule_run(ctx: typer.Context) -> None:
    """Run every periodic job that is due, once, then exit (for cron and tests)."""
    gateway = cli_context(ctx).gateway()
    report = gateway.dispatcher.run_once()
    console.print(f"outbox: {report.sent} sent, {report.retried} to retry, {report.failed} failed")


def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Counts of open work by status, sector and priority."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.read() as session:
        figures = queue_stats(session)
    if as_json:
        print_json(figures)
        return
    for name in ("by_status", "by_sector", "by_priority"):
        print_table(
            name.replace("_", " ").capitalize(), ["", "tickets"], sorted(figures[name].items())
        )


def health(
    ctx: typer.Context,
    smtp: Annotated[
        bool, typer.Option("--smtp", help="also check that the SMTP listener answers")
    ] = False,
) -> None:
    """Readiness for a load balancer or systemd: exit 0 ready, 1 not, with one line."""
    from cli.errors import fail
    from mailgate.errors import ConfigError
    from mailgate.health import check_health

    try:
        report = check_health(cli_context(ctx).settings, smtp=smtp)
    except ConfigError as exc:
        fail(f"unhealthy: {exc}", 1)
    if not report.ok:
        fail(report.line, 1)
    console.print(report.line, markup=False, soft_wrap=True)
