"""``mailgate tickets …``: the agent's queue."""

from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from cli.context import cli_context
from cli.errors import fail
from cli.params import MAX_LISTED, row_id
from cli.render import attachment_remarks, console, print_json, print_table, short_time
from mailgate.actions import TicketChanges
from store.merge import merge_tickets
from store.timelog import log_time, time_spent
from store.views import SortKey, TicketFilter, list_tickets, ticket_detail

app = typer.Typer(no_args_is_help=True)

DEFAULT_AGENT_ENV = "MAILGATE_AGENT"


@app.command("list")
def list_command(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="repeatable; 'all' for history")
    ] = None,
    sector: Annotated[str | None, typer.Option(help="only this sector's queue")] = None,
    priority: Annotated[str | None, typer.Option()] = None,
    type_: Annotated[str | None, typer.Option("--type")] = None,
    shop: Annotated[str | None, typer.Option()] = None,
    assignee: Annotated[str | None, typer.Option()] = None,
    search: Annotated[str | None, typer.Option(help="text in subjects and messages")] = None,
    sort: Annotated[str, typer.Option(help="created|updated|priority|due")] = "priority",
    limit: Annotated[int, typer.Option(min=1, max=MAX_LISTED)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List tickets: by default every status but closed, most urgent first (FIFO within)."""
    if sort not in ("created", "updated", "priority", "due"):
        fail(f"unknown sort {sort!r} (created, updated, priority or due)", 2)
    query = TicketFilter(
        statuses=tuple(status or ()),
        sector=sector,
        priority=priority,
        type=type_,
        shop=shop,
        assignee=assignee,
        search=search,
        sort=_sort_key(sort),
        limit=limit,
    )
    gateway = cli_context(ctx).gateway()
    with gateway.db.read() as session:
        tickets = list_tickets(session, query, now=gateway.clock())
    if as_json:
        print_json([t.model_dump(mode="json") for t in tickets])
        return
    print_table(
        "Tickets",
        ["#", "status", "prio", "sector", "type", "requester", "subject", "created", "due"],
        (
            [
                t.id,
                t.status + (f" ({t.standby_reason})" if t.standby_reason else ""),
                t.priority,
                t.sector,
                t.type,
                t.requester + (" ✓" if t.verified else ""),
                t.subject[:60],
                short_time(t.created_at),
                short_time(t.due_at) + (" BREACHED" if t.breached else ""),
            ]
            for t in tickets
        ),
    )


def _sort_key(value: str) -> SortKey:
    if value == "created":
        return "created"
    if value == "updated":
        return "updated"
    if value == "due":
        return "due"
    return "priority"


@app.command()
def show(
    ctx: typer.Context,
    ticket_id: Annotated[int, row_id()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one ticket with its messages, how each was threaded, and its history."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.read() as session:
        detail = ticket_detail(session, ticket_id, now=gateway.clock())
    if as_json:
        print_json(detail.model_dump_contract())
        return
    console.print(f"[bold]#{detail.id}[/bold] {detail.subject}")
    console.print(
        f"status {detail.status}"
        f"{' (' + detail.standby_reason + ')' if detail.standby_reason else ''}"
        f" · {detail.priority} · {detail.type} · sector {detail.sector}"
        f" · requester {detail.requester}"
        f"{f' (verified: {detail.verified_by})' if detail.verified else ' (unverified)'}"
        f"{' · shop ' + detail.shop if detail.shop else ''}"
        f"{' · assignee ' + detail.assignee if detail.assignee else ''}"
        f"{' · CONFIDENTIAL' if detail.confidential else ''}"
    )
    if detail.confidential and not detail.verified:
        console.print(
            "[bold red]HELD:[/bold red] a confidential request from an unverified sender. "
            "Confirm the merchant's identity another way before acting; answering needs "
            "--confirm-identity (recorded in the history)."
        )
    if detail.follow_up_of:
        console.print(f"follow-up of #{detail.follow_up_of}")
    if detail.merged_into:
        console.print(f"merged into #{detail.merged_into}")
    if detail.due_at:
        console.print(f"due {short_time(detail.due_at)}{' BREACHED' if detail.breached else ''}")
    if detail.budget_state:
        console.print(
            f"budget {detail.budget_hours:g} h = {detail.budget_amount:.2f} EUR"
            f" ({detail.budget_state})"
            + (f" · deadline {detail.deadline.isoformat()}" if detail.deadline else "")
        )
    if detail.time_spent_minutes:
        console.print(f"time spent {detail.time_spent_minutes} min ({detail.calls} call(s))")
    for m in detail.messages:
        arrow = {"in": "←", "out": "→", "note": "✎"}.get(m.direction, "?")
        who = m.author or m.from_ or ""
        console.print(
            f"\n[bold]{arrow} {m.direction} #{m.id}[/bold] {short_time(m.date)} {who}"
            f"  [dim]threaded by {m.threaded_by}"
            f"{': ' + m.thread_evidence if m.thread_evidence else ''}[/dim]"
        )
        if m.flags:
            console.print(f"[yellow]flags: {', '.join(m.flags)}[/yellow]")
        console.print(m.reply_text or m.body_text, markup=False)
        for a in m.attachments:
            remarks = attachment_remarks(a.status, a.detected_type)
            console.print(
                f"  📎 {a.filename} ({a.content_type}, {a.size} bytes){remarks}", markup=False
            )
    if detail.events:
        console.print("\n[bold]history[/bold]")
        for e in detail.events:
            change = f"{e.field}: {e.old} → {e.new}" if e.field else ""
            console.print(
                f"  {short_time(e.at)} {e.actor} {e.action} {change} {e.detail}", markup=False
            )


def _agent(agent: str | None) -> str:
    value = agent or os.environ.get(DEFAULT_AGENT_ENV)
    if not value:
        fail(f"say who you are: --agent EMAIL or ${DEFAULT_AGENT_ENV}", 2)
    return value.strip().lower()


def _text_from(message: str | None, file: Path | None, what: str) -> str:
    if message is not None and file is not None:
        fail("give --message or --file, not both", 2)
    if message is not None:
        return message
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}", 2)
    return _from_editor(what)


def _from_editor(what: str) -> str:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w+", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write(f"\n# Write your {what} above. Lines starting with '# ' are removed.\n")
        path = Path(f.name)
    try:
        try:
            result = subprocess.run([*editor.split(), str(path)], check=False)  # noqa: S603
        except OSError as exc:
            fail(f"cannot start the editor {editor!r} ($VISUAL, $EDITOR): {exc.strerror}", 1)
        if result.returncode != 0:
            fail(f"editor exited with {result.returncode}; nothing sent", 1)
        # An editor set to another charset: its odd letters are shown as such, not a crash.
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    finally:
        path.unlink(missing_ok=True)
    text = "\n".join(line for line in lines if not line.startswith("# ")).strip()
    if not text:
        fail(f"empty {what}; nothing sent", 1)
    return text


@app.command()
def reply(
    ctx: typer.Context,
    ticket_id: Annotated[int, row_id()],
    message: Annotated[str | None, typer.Option("--message", "-m")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f")] = None,
    agent: Annotated[
        str | None, typer.Option(help=f"your address (or ${DEFAULT_AGENT_ENV})")
    ] = None,
    status: Annotated[str | None, typer.Option(help="set this status with the reply")] = None,
    reason: Annotated[str | None, typer.Option(help="stand-by reason for on_hold")] = None,
    confirm_identity: Annotated[
        bool,
        typer.Option(
            "--confirm-identity",
            help="you confirmed the sender's identity another way (needed for a held "
            "confidential request; recorded in the history)",
        ),
    ] = False,
) -> None:
    """Answer the merchant (mailed from the support address; opens $EDITOR without text)."""
    who = _agent(agent)
    text = _text_from(message, file, "reply")
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        sent = gateway.actions.reply(
            session,
            ticket_id,
            text,
            agent=who,
            now=gateway.clock(),
            status=status,
            reason=reason,
            confirm_identity=confirm_identity,
        )
    console.print(f"reply #{sent} queued for ticket #{ticket_id}")


@app.command()
def note(
    ctx: typer.Context,
    ticket_id: Annotated[int, row_id()],
    message: Annotated[str | None, typer.Option("--message", "-m")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f")] = None,
    agent: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Add an internal note (never mailed to the merchant)."""
    who = _agent(agent)
    text = _text_from(message, file, "note")
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        written = gateway.actions.note(session, ticket_id, text, agent=who, now=gateway.clock())
    console.print(f"note #{written} added to ticket #{ticket_id}")


@app.command("set")
def set_command(
    ctx: typer.Context,
    ticket_id: Annotated[int, row_id()],
    status: Annotated[str | None, typer.Option()] = None,
    reason: Annotated[
        str | None, typer.Option(help="stand-by reason (with --status on_hold)")
    ] = None,
    type_: Annotated[str | None, typer.Option("--type")] = None,
    sector: Annotated[str | None, typer.Option()] = None,
    priority: Annotated[str | None, typer.Option()] = None,
    assignee: Annotated[str | None, typer.Option()] = None,
    agent: Annotated[str | None, typer.Option()] = None,
    confidential: Annotated[
        bool,
        typer.Option(
            "--confidential",
            help="mark the ticket confidential; an unverified requester is asked for proof",
        ),
    ] = False,
) -> None:
    """Change status, type, sector, priority or assignee (recorded in the history)."""
    who = agent or os.environ.get(DEFAULT_AGENT_ENV) or "cli"
    changes = TicketChanges(
        status=status,
        reason=reason,
        type=type_,
        sector=sector,
        priority=priority,
        assignee=assignee,
    )
    if changes == TicketChanges() and not confidential:
        fail("nothing to change: give at least one option", 2)
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        done = gateway.actions.update(
            session, ticket_id, changes, actor=who.lower(), now=gateway.clock()
        )
        if confidential and gateway.trust.mark_confidential(
            session, ticket_id, actor=who.lower(), now=gateway.clock()
        ):
            done.append("confidential: no -> yes")
    console.print(f"#{ticket_id}: " + ("; ".join(done) if done else "nothing changed"))


@app.command()
def merge(
    ctx: typer.Context,
    ticket_id: Annotated[int, row_id(help="the duplicate")],
    into_id: Annotated[int, row_id("INTO_ID", help="the ticket that stays")],
    agent: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Merge a duplicate into another ticket: its messages and people move, it closes."""
    who = _agent(agent)
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        merge_tickets(session, ticket_id, into_id, actor=who, now=gateway.clock(), sla=gateway.sla)
    console.print(f"#{ticket_id} merged into #{into_id}")


@app.command()
def budget(
    ctx: typer.Context,
    ticket_id: Annotated[int, row_id()],
    hours: Annotated[float, typer.Option("--hours", help="estimated hours of work")],
    agent: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Mail the merchant a development budget (hours x the shop's rate) for approval."""
    who = _agent(agent)
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        proposed = gateway.workflow.development.propose_budget(
            session, ticket_id, hours, agent=who, now=gateway.clock()
        )
    console.print(
        f"#{ticket_id}: budget {proposed.hours:g} h x {proposed.rate:g} = "
        f"{proposed.amount:.2f} EUR mailed for approval; the ticket is pending"
    )


@app.command()
def deadline(
    ctx: typer.Context,
    ticket_id: Annotated[int, row_id()],
    day_text: Annotated[str, typer.Option("--date", help="YYYY-MM-DD")],
    agent: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Set the delivery date of an approved development request and tell the merchant."""
    who = _agent(agent)
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        fail(f"bad date {day_text!r} (YYYY-MM-DD)", 2)
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        gateway.workflow.development.set_deadline(
            session, ticket_id, day, agent=who, now=gateway.clock()
        )
    console.print(f"#{ticket_id}: deadline {day.isoformat()} mailed; the ticket is on hold")


@app.command("log-time")
def log_time_command(
    ctx: typer.Context,
    ticket_id: Annotated[int, row_id()],
    minutes: Annotated[int, typer.Argument(metavar="MINUTES")],
    call: Annotated[bool, typer.Option("--call", help="it was a phone call")] = False,
    note: Annotated[str, typer.Option(help="what the time was for")] = "",
    agent: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Log minutes of work on a ticket (phone calls with --call)."""
    who = _agent(agent)
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        log_time(session, ticket_id, minutes, agent=who, now=gateway.clock(), call=call, note=note)
        total = time_spent(session, ticket_id)
    console.print(
        f"#{ticket_id}: {minutes} min logged{' (call)' if call else ''}; {total.minutes} min in all"
    )
