"""Mail commands: ``serve``, ``ingest``, ``import``, ``parse``."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from cli.context import cli_context
from cli.errors import fail
from cli.render import attachment_remarks, console, print_json, print_table
from mailgate.config import Settings
from mailgate.sources.exits import EX_IOERR, EX_NOINPUT, EX_TEMPFAIL


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(ingest)
    app.command("import")(import_command)
    app.command()(parse)


def serve(
    ctx: typer.Context,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="gateway processes sharing the SMTP port (SO_REUSEPORT); 0: one per CPU",
        ),
    ] = 1,
) -> None:
    """Run the gateway: SMTP listener, IMAP pollers, outbox dispatcher and timers, until
    SIGTERM/SIGINT."""
    from mailgate.logs import configure_logging
    from mailgate.serve import run_until_signalled

    context = cli_context(ctx)
    settings = context.settings
    configure_logging(settings.log, mail_lines=True)
    if workers != 1:
        _serve_workers(settings, workers or os.cpu_count() or 1)
        return
    gateway = context.gateway()

    def ready(host: str, port: int) -> None:
        mailboxes = ", ".join(m.name for m in settings.imap)
        console.print(
            f"Mailgate listening on {host}:{port} for {', '.join(settings.smtp.addresses)}; "
            + (f"polling IMAP {mailboxes}; " if mailboxes else "")
            + f"store {_shown(settings.store.url)}; outbound {settings.outbound.transport}. "
            "Ctrl-C stops."
        )

    run_until_signalled(gateway, ready=ready)


def _shown(url: str) -> str:
    """The store URL without its password (the line goes to the service's journal)."""
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


def _serve_workers(settings: Settings, count: int) -> None:
    from mailgate.workers import Supervisor, WorkerStartError

    def ready(host: str, port: int, started: int) -> None:
        console.print(
            f"Mailgate listening on {host}:{port} with {started} workers for "
            f"{', '.join(settings.smtp.addresses)}; store {_shown(settings.store.url)}; "
            f"outbound {settings.outbound.transport}. Ctrl-C stops."
        )

    verbose = logging.getLogger().isEnabledFor(logging.INFO)
    try:
        Supervisor(settings, count, verbose=verbose).run(ready)
    except WorkerStartError as exc:
        fail(str(exc), 1)


def ingest(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="a raw mail; stdin when absent")] = None,
    sender: Annotated[
        str | None, typer.Option("--from", help="envelope sender (MTA's $SENDER)")
    ] = None,
    recipient: Annotated[list[str] | None, typer.Option("--to", help="envelope recipient")] = None,
) -> None:
    """Take one mail from an MTA pipe. Exit 0 accepted, 75 retry later, 65 rejected."""
    from mailgate.sources.pipe import ingest_one

    context = cli_context(ctx)
    try:
        max_size = context.settings.smtp.max_message_size
    except Exception as exc:  # the MTA keeps the mail until the configuration is fixed
        fail(f"temporary failure: {exc}", EX_TEMPFAIL)
    try:
        # One byte past the limit is enough to refuse it: a huge mail is not held whole.
        if file is None:
            raw = sys.stdin.buffer.read(max_size + 1)
        else:
            with file.open("rb") as handle:
                raw = handle.read(max_size + 1)
    except OSError as exc:
        fail(f"cannot read {file or 'stdin'}: {exc.strerror}", EX_NOINPUT)
    try:
        gateway = context.gateway()
        result = ingest_one(
            gateway.pipeline,
            raw,
            clock=gateway.clock,
            max_size=max_size,
            mail_from=sender,
            recipients=tuple(recipient or ()),
        )
    except Exception as exc:  # whatever it is, the MTA must keep the mail and retry
        fail(f"temporary failure: {exc}", EX_TEMPFAIL)
    if result.exit_code != 0:
        fail(result.message, result.exit_code)
    console.print(result.message)


def import_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="mbox file, maildir, folder of .eml, or one .eml")],
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Import mails from files (safe to run twice: deliveries already held are skipped)."""
    from mailgate.sources.importer import count_mails, import_mails

    if not path.exists():
        fail(f"no such file or folder: {path}", EX_NOINPUT)
    gateway = cli_context(ctx).gateway()
    try:
        total = count_mails(path)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", EX_NOINPUT)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json or not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("importing", total=total)
        # A child process pays off past its start-up (about a second) only for many mails.
        # Its first mails are prepared here while the child starts (wait=False).
        preparing = gateway.prepare_pool(processes=None if total >= 200 else 0, wait=False)
        try:
            summary = import_mails(
                gateway.pipeline,
                path,
                clock=gateway.clock,
                preparing=preparing,
                batch_size=gateway.settings.store.batch_size,
                progress=lambda n: bar.advance(task, n),
            )
        finally:
            preparing.close()
    if as_json:
        print_json({"total": summary.total, **summary.counts})
    else:
        print_table(
            "Import summary",
            ["outcome", "mails"],
            [*sorted(summary.counts.items()), ("total", summary.total)],
        )
    if summary.unreadable:
        _report_unreadable(summary.unreadable)


def _report_unreadable(files: list[str], shown: int = 10) -> NoReturn:
    """Name the mail files the import could not read (the rest was imported) and exit
    EX_IOERR, so that a script sees that the import is not complete."""
    for line in files[:shown]:
        print(f"mailgate: cannot read {line}", file=sys.stderr)
    more = f" ({len(files) - shown} not named above)" if len(files) > shown else ""
    fail(f"{len(files)} mail files could not be read{more}; the others were imported", EX_IOERR)


def parse(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="raw mail files")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Show how Mailgate reads each mail, without storing anything."""
    from mailgate.explain import explain_mail

    settings = cli_context(ctx).settings
    for file in files:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}", EX_NOINPUT)
        report = explain_mail(raw, settings)
        if as_json:
            print_json(report)
        else:
            _print_report(file, report)


def _print_report(file: Path, report: dict[str, Any]) -> None:
    console.print(f"[bold]{file}[/bold]")
    for key in (
        "from_address",
        "from_name",
        "to",
        "cc",
        "subject",
        "date",
        "message_id",
        "in_reply_to",
        "references",
        "screen",
        "auth",
        "triage",
        "language",
    ):
        value = report.get(key)
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        console.print(f"  {key}: {shown}", markup=False)
    for a in report["attachments"]:
        console.print(
            f"  attachment: {a['filename']} ({a['content_type']}, {a['size']} bytes)"
            + attachment_remarks(a.get("status"), a.get("detected_type")),
            markup=False,
        )
    console.print("  --- new part of the reply ---", markup=False)
    console.print(report["reply_text"], markup=False)
