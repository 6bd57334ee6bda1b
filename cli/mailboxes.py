"""``mailboxes add|list|test|remove``: the IMAP mailboxes Mailgate reads.

``add`` and ``remove`` edit the config file in force (comments kept); ``serve`` picks
the change up when restarted. ``list`` joins the configuration with what the pollers
recorded in the store; ``test`` connects the way the poller does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from cli.context import cli_context
from cli.render import console, print_json, print_table, short_time
from mailgate.config import DEFAULT_CONFIG_FILE, ImapSettings, config_path
from mailgate.config_file import add_mailbox, new_mailbox, remove_mailbox
from mailgate.errors import ConfigError
from mailgate.passwords import read_password_file
from mailgate.sources.imap_check import check_mailbox
from store.mailboxes import mailbox_statuses

mailboxes = typer.Typer(no_args_is_help=True)

Security = Literal["ssl", "starttls", "none"]


@mailboxes.command("add")
def mailboxes_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="short name: letters, digits, - and _")],
    host: Annotated[str, typer.Option(help="IMAP server")],
    user: Annotated[str, typer.Option(help="login")],
    security: Annotated[
        Security, typer.Option(help="ssl (port 993), starttls (143) or none (loopback only)")
    ] = "ssl",
    port: Annotated[int | None, typer.Option(help="default: 993 for ssl, else 143")] = None,
    folder: Annotated[str, typer.Option(help="folder to read")] = "INBOX",
    processed_folder: Annotated[
        str, typer.Option(help="where mails go once committed (must exist)")
    ] = "Processed",
    password_env: Annotated[
        str | None,
        typer.Option(help="variable holding the password (default MAILGATE_IMAP_<NAME>_PASSWORD)"),
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="file holding the password, mode 600")
    ] = None,
    cafile: Annotated[Path | None, typer.Option(help="CA bundle for the server")] = None,
) -> None:
    """Add an IMAP mailbox to the config file (its comments are kept)."""
    context = cli_context(ctx)
    path = config_path(context.config) or DEFAULT_CONFIG_FILE
    if password_file is not None:
        password_file = password_file.absolute()  # serve may run from another folder
        if password_file.exists():
            read_password_file(password_file, what=f"mailbox {name}")
    values: dict[str, Any] = {
        "name": name,
        "host": host,
        "port": port if port is not None else (993 if security == "ssl" else 143),
        "user": user,
        "security": security,
        "folder": folder,
        "processed_folder": processed_folder,
        "password_env": password_env,
        "password_file": str(password_file) if password_file else None,
        "cafile": str(cafile.absolute()) if cafile else None,
    }
    mailbox = new_mailbox(**values)
    created = not path.exists()
    add_mailbox(path, mailbox)
    console.print(
        f"mailbox {mailbox.name} added to {path}{' (new file)' if created else ''}: "
        f"{mailbox.host}:{mailbox.port} ({mailbox.security}) as {mailbox.user}, "
        f"{mailbox.folder!r} → {mailbox.processed_folder!r}; "
        f"password from {_password_source(mailbox)}",
        markup=False,
    )
    if password_file is not None and not password_file.exists():
        console.print(f"note: {password_file} does not exist yet (create it with mode 600)")
    console.print(
        f"next: mailgate mailboxes test {mailbox.name}, then restart mailgate serve",
        markup=False,
    )


@mailboxes.command("list")
def mailboxes_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List the configured mailboxes with their last poll, last error and mails taken in."""
    context = cli_context(ctx)
    configured = context.settings.imap
    statuses = {}
    if configured:
        with context.gateway().db.read() as session:
            statuses = mailbox_statuses(session, tuple(m.name for m in configured))
    rows = []
    for m in configured:
        status = statuses[m.name]
        rows.append(
            {
                "name": m.name,
                "host": m.host,
                "port": m.port,
                "security": m.security,
                "user": m.user,
                "folder": m.folder,
                "processed_folder": m.processed_folder,
                "password_env": m.password_env,
                "password_file": m.password_file,
                "idle": m.idle,
                "poll_interval": m.poll_interval,
                "last_poll_at": _iso(status.last_poll_at),
                "last_error": status.last_error,
                "last_error_at": _iso(status.last_error_at),
                "ingested": status.ingested,
            }
        )
    if as_json:
        print_json(rows)
        return
    print_table(
        "Mailboxes",
        ["name", "server", "user", "folders", "last poll", "mails in", "last error"],
        (
            [
                m.name,
                f"{m.host}:{m.port} ({m.security})",
                m.user,
                f"{m.folder} → {m.processed_folder}",
                short_time(statuses[m.name].last_poll_at) or "never",
                statuses[m.name].ingested,
                _error_cell(statuses[m.name].last_error, statuses[m.name].last_error_at),
            ]
            for m in configured
        ),
    )


@mailboxes.command("test")
def mailboxes_test(ctx: typer.Context, name: str) -> None:
    """Connect and log in, check both folders exist, count the mails waiting."""
    mailbox = _configured(cli_context(ctx).settings.imap, name)
    console.print(check_mailbox(mailbox).summary(), markup=False)


@mailboxes.command("remove")
def mailboxes_remove(ctx: typer.Context, name: str) -> None:
    """Remove a mailbox from the config file; its mails and tickets stay where they are."""
    context = cli_context(ctx)
    path = config_path(context.config)
    if path is None:
        raise ConfigError(f"no mailbox {name!r}: no config file in use")
    removed = remove_mailbox(path, name)
    console.print(
        f"mailbox {removed.name} removed from {path}; its mails stay on {removed.host} "
        "and its tickets in the store. Restart mailgate serve to stop polling it.",
        markup=False,
    )


def _configured(configured: tuple[ImapSettings, ...], name: str) -> ImapSettings:
    for mailbox in configured:
        if mailbox.name.lower() == name.lower():
            return mailbox
    known = ", ".join(m.name for m in configured) or "none"
    raise ConfigError(f"no mailbox {name!r} configured (configured: {known})")


def _password_source(mailbox: ImapSettings) -> str:
    if mailbox.password_file:
        return f"the file {mailbox.password_file}"
    return f"${mailbox.password_env}"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _error_cell(error: str | None, at: Any) -> str:
    return f"{short_time(at)} {error}" if error else ""
