"""Admin commands: ``shops``, ``users``, ``agents``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.context import cli_context
from cli.errors import fail
from cli.render import console, print_json, print_table, short_time
from mailgate.sources.exits import EX_NOINPUT
from store import directory

shops = typer.Typer(no_args_is_help=True)
users = typer.Typer(no_args_is_help=True)
agents = typer.Typer(no_args_is_help=True)


@shops.command("add")
def shops_add(
    ctx: typer.Context,
    name: str,
    locale: Annotated[
        str | None,
        typer.Option(
            help="ro|nl|pt|pl|en: the language of notifications "
            "(default: chosen per ticket from each mail)"
        ),
    ] = None,
    rate: Annotated[float, typer.Option(help="EUR per hour for development requests")] = 0.0,
) -> None:
    """Register a shop."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        shop = directory.add_shop(
            session,
            name,
            locale=locale.lower() if locale else None,
            rate=rate,
            now=gateway.clock(),
        )
    locale_text = shop.locale or "per mail"
    console.print(f"shop {shop.name!r} added (locale {locale_text}, {shop.hourly_rate:g} EUR/h)")


@shops.command("list")
def shops_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List shops."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.read() as session:
        rows = directory.list_shops(session)
    if as_json:
        print_json([{"name": s.name, "locale": s.locale, "rate": s.hourly_rate} for s in rows])
        return
    print_table(
        "Shops",
        ["name", "locale", "EUR/h", "since"],
        (
            [s.name, s.locale or "per mail", f"{s.hourly_rate:g}", short_time(s.created_at)]
            for s in rows
        ),
    )


@users.command("add")
def users_add(
    ctx: typer.Context,
    email: str,
    shop: Annotated[str, typer.Option(help="the shop this user belongs to")],
    name: Annotated[str, typer.Option(help="display name")] = "",
) -> None:
    """Register a shop user (their address may then raise confidential requests)."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        user = directory.add_user(session, email, shop=shop, name=name, now=gateway.clock())
    console.print(f"{user.email} registered for shop {shop!r}")


@users.command("list")
def users_list(
    ctx: typer.Context,
    shop: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List registered shop users."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.read() as session:
        rows = directory.list_users(session, shop)
    if as_json:
        print_json([{"email": u.email, "name": u.name, "shop": s} for u, s in rows])
        return
    print_table("Users", ["email", "name", "shop"], ([u.email, u.name, s] for u, s in rows))


@users.command("import")
def users_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="columns: email,shop[,name]")],
) -> None:
    """Register shop users from a CSV file: all rows, or none if one is bad."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}", EX_NOINPUT)
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        summary = directory.import_users_csv(session, text, now=gateway.clock())
    console.print(f"{summary.added} user(s) registered, {summary.unchanged} already registered")


@users.command("remove")
def users_remove(ctx: typer.Context, email: str) -> None:
    """Remove a shop user."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        directory.remove_user(session, email)
    console.print(f"{email.lower()} removed")


@agents.command("add")
def agents_add(
    ctx: typer.Context,
    email: str,
    name: Annotated[str, typer.Option()] = "",
    sector: Annotated[list[str] | None, typer.Option("--sector", help="repeatable")] = None,
) -> None:
    """Register a support agent."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        agent = directory.add_agent(
            session,
            email,
            name=name,
            sectors=tuple(sector or ()),
            known_sectors=gateway.settings.workflow.sectors,
            now=gateway.clock(),
        )
    console.print(f"agent {agent.email} added" + (f" ({agent.sectors})" if agent.sectors else ""))


@agents.command("deactivate")
def agents_deactivate(ctx: typer.Context, email: str) -> None:
    """Stop an agent (someone who left): sent nothing more, their mail a stranger's, their
    open tickets unassigned."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        unassigned = directory.set_agent_active(
            session, email, False, actor="admin", now=gateway.clock()
        )
    console.print(
        f"agent {directory.normalize_address(email)} deactivated; {unassigned} tickets unassigned"
    )


@agents.command("activate")
def agents_activate(ctx: typer.Context, email: str) -> None:
    """Let a deactivated agent work again."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        directory.set_agent_active(session, email, True, actor="admin", now=gateway.clock())
    console.print(f"agent {directory.normalize_address(email)} activated")


@agents.command("list")
def agents_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List agents."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.read() as session:
        rows = directory.list_agents(session)
    if as_json:
        print_json(
            [
                {"email": a.email, "name": a.name, "sectors": a.sector_list, "active": a.active}
                for a in rows
            ]
        )
        return
    print_table(
        "Agents",
        ["email", "name", "sectors", "active"],
        ([a.email, a.name, ", ".join(a.sector_list), "yes" if a.active else "no"] for a in rows),
    )
