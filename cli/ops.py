"""Operations: ``db upgrade``, ``schedule run``, ``peak``, ``stats``, ``health``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

import typer

from cli.context import cli_context
from cli.errors import fail
from cli.render import console, print_json, print_table
from store.sla import peak_mode, set_peak_mode
from store.stats import DEFAULT_PERIOD_DAYS, default_since, workflow_stats

db = typer.Typer(no_args_is_help=True, help="The ticket store's schema.")
schedule = typer.Typer(no_args_is_help=True, help="Periodic jobs (auto-close, reminders, retries).")


def register(app: typer.Typer) -> None:
    app.add_typer(db, name="db")
    app.add_typer(schedule, name="schedule")
    app.command()(stats)
    app.command()(peak)
    app.command()(health)


@db.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the schema migrations (every command also does this on start), then compute
    what a migration could not: the business-time durations of older tickets (revision
    0003), with the configured business calendar, in batches that can be interrupted,
    and the SLA verdicts that stats keeps per day, by the configured targets (revision
    0005; ``serve`` does this too when it starts)."""
    from mailgate.app import build_gateway
    from store.day_totals import sync_limits
    from store.durations import backfill_business_seconds

    settings = cli_context(ctx).settings
    gateway = build_gateway(settings)
    shown = [0]

    def progress(count: int) -> None:
        if count - shown[0] >= 50_000:
            shown[0] = count
            console.print(f"  business times of older tickets: {count}", highlight=False)

    try:
        done = backfill_business_seconds(gateway.db, gateway.sla.calendar, progress=progress)
        with gateway.db.write() as session:
            recounted = sync_limits(session, gateway.sla)
    finally:
        gateway.close()
    console.print(f"schema of {settings.store.url} is up to date")
    if done:
        console.print(f"business times of {done} older tickets computed (stats)")
    if recounted:
        console.print("SLA verdicts of stats counted by the configured targets")


@schedule.command("run")
def schedule_run(ctx: typer.Context) -> None:
    """Run every periodic job that is due, once, then exit (for cron and tests)."""
    gateway = cli_context(ctx).gateway()
    console.print(gateway.scheduler.run_once().summary())


def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DAYS|YYYY-MM-DD",
            help=f"reporting period: the last DAYS days, or from a date (UTC);"
            f" default {DEFAULT_PERIOD_DAYS} days",
        ),
    ] = None,
    all_time: Annotated[
        bool, typer.Option("--all", help="reporting period: all time (slow on a big store)")
    ] = False,
) -> None:
    """Response times, SLA results, backlog, reopen rate, per agent and per shop.

    Times, SLA results and first responses cover the tickets created in the reporting
    period; replies, reopen rate and logged minutes what happened in it. Ticket counts,
    the backlog and each agent's open tickets are always of the whole store.
    """
    if since is not None and all_time:
        fail("give --since or --all, not both", 2)
    gateway = cli_context(ctx).gateway()
    now = gateway.clock()
    start = None if all_time else _period_start(since, now)
    with gateway.db.read() as session:
        figures = workflow_stats(session, gateway.sla, now, since=start)
    if as_json:
        print_json(figures)
        return
    first = figures["first_response_minutes"]
    console.print(
        f"[bold]Mean first response: {_minutes(first['wall_clock']['mean'])}[/bold]"
        f" (median {_minutes(first['wall_clock']['median'])};"
        f" business time: mean {_minutes(first['business']['mean'])},"
        f" median {_minutes(first['business']['median'])};"
        f" {first['wall_clock']['count']} tickets answered)"
    )
    done = figures["resolution_minutes"]
    console.print(
        f"Mean resolution: {_minutes(done['wall_clock']['mean'])}"
        f" (business time {_minutes(done['business']['mean'])};"
        f" {done['wall_clock']['count']} tickets solved)"
    )
    console.print(
        f"Period: tickets created {_period_text(start)} (--since DAYS|DATE, --all);"
        " counts and backlog: all tickets"
    )
    if not figures["period"]["business_time_complete"]:
        console.print(
            "Business times of older tickets are still to be computed: run `mailgate db upgrade`"
        )
    reopen = figures["reopen"]
    if reopen["rate"] is not None:
        console.print(
            f"Reopened: {reopen['reopened']} of {reopen['solved']} solved ({reopen['rate']:.0%})"
        )
    for title, key in (("SLA by priority", "by_priority"), ("SLA by sector", "by_sector")):
        print_table(
            title,
            ["", "first response met", "breached", "resolution met", "breached"],
            (
                [
                    name,
                    r["first_response"]["met"],
                    r["first_response"]["breached"],
                    r["resolution"]["met"],
                    r["resolution"]["breached"],
                ]
                for name, r in figures["sla"][key].items()
            ),
        )
    statuses = [s for s, n in figures["by_status"].items() if n and s != "closed"]
    print_table(
        "Backlog",
        ["sector", *statuses],
        (
            [sector, *(counts.get(s, 0) for s in statuses)]
            for sector, counts in figures["backlog"].items()
        ),
    )
    print_table(
        "Agents",
        ["agent", "replies", "first responses", "mean first response", "open", "breached", "min"],
        (
            [
                name,
                a["replies"],
                a["first_responses"]["count"],
                _minutes(a["first_responses"]["mean"]),
                a["assigned_open"],
                a["assigned_breached"],
                a["minutes_logged"],
            ]
            for name, a in figures["agents"].items()
        ),
    )
    print_table(
        "Time by shop",
        ["shop", "minutes", "calls"],
        (
            [name or "(none)", t["minutes"], t["calls"]]
            for name, t in figures["time_by_shop"].items()
        ),
    )


def _period_start(since: str | None, now: datetime) -> datetime:
    """``--since``: a number of days back from now, or a date (midnight UTC)."""
    if since is None:
        return default_since(now)
    value = since.strip()
    if value.isdigit():
        return now - timedelta(days=int(value))
    try:
        day = date.fromisoformat(value)
    except ValueError:
        fail(f"--since takes a number of days or a date YYYY-MM-DD, not {since!r}", 2)
    return datetime.combine(day, time(0), tzinfo=UTC)


def _period_text(start: datetime | None) -> str:
    return "since the beginning" if start is None else f"since {start:%Y-%m-%d %H:%M} UTC"


def _minutes(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.0f} min"
    return f"{value / 60:.1f} h"


def peak(
    ctx: typer.Context,
    state: Annotated[
        str | None, typer.Argument(metavar="[on|off]", help="switch; without it, show")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="who switches (for the history)")] = None,
) -> None:
    """Peak mode for sales campaigns: only immediate tickets keep their SLA clock."""
    gateway = cli_context(ctx).gateway()
    if state is None:
        with gateway.db.read() as session:
            on = peak_mode(session)
        console.print(f"peak mode is {'on' if on else 'off'}")
        return
    if state.lower() not in {"on", "off"}:
        fail(f"peak takes 'on' or 'off', not {state!r}", 2)
    on = state.lower() == "on"
    with gateway.db.write() as session:
        count = set_peak_mode(
            session, on, actor=agent or "cli", now=gateway.clock(), policy=gateway.sla
        )
    console.print(
        f"peak mode {'on: only immediate tickets keep their SLA clock' if on else 'off'}"
        f" ({count} open tickets re-timed)"
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
