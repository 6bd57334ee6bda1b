"""Queues an agent watches besides tickets: ``suspended`` mails and the ``outbox``."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from cli.context import cli_context
from cli.params import MAX_LISTED, row_id
from cli.render import console, print_json, print_table, short_time
from mailgate.sources.pipe import describe
from store import outbox as outbox_store
from store import suspended as suspended_store

suspended = typer.Typer(no_args_is_help=True)
outbox = typer.Typer(no_args_is_help=True)


def _actor(agent: str | None) -> str:
    return (agent or os.environ.get("MAILGATE_AGENT") or "cli").lower()


@suspended.command("list")
def suspended_list(
    ctx: typer.Context,
    reason: Annotated[str | None, typer.Option(help="only this reason")] = None,
    all_states: Annotated[bool, typer.Option("--all", help="released and deleted too")] = False,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LISTED)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List suspended mails (auto-replies, bounces, loops, strangers' replies, errors)."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.read() as session:
        rows = suspended_store.list_suspended(
            session, state=None if all_states else "suspended", reason=reason, limit=limit
        )
    if as_json:
        print_json(
            [
                {
                    "id": r.id,
                    "reason": r.reason,
                    "detail": r.detail,
                    "from": r.from_address,
                    "subject": r.subject,
                    "state": r.state,
                    "ticket_id": r.ticket_id,
                    "created_at": r.created_at.isoformat(),
                }
                for r in rows
            ]
        )
        return
    print_table(
        "Suspended mails",
        ["id", "when", "reason", "from", "subject", "detail", "state"],
        (
            [
                r.id,
                short_time(r.created_at),
                r.reason,
                r.from_address,
                r.subject[:50],
                r.detail[:60],
                r.state,
            ]
            for r in rows
        ),
    )


@suspended.command("release")
def suspended_release(
    ctx: typer.Context,
    suspended_id: Annotated[int, row_id()],
    agent: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Take a suspended mail after all: it goes through the pipeline without the screen."""
    gateway = cli_context(ctx).gateway()
    outcome = gateway.pipeline.release(suspended_id, actor=_actor(agent))
    console.print(f"released: {describe(outcome)}")


@suspended.command("delete")
def suspended_delete(
    ctx: typer.Context,
    suspended_id: Annotated[int, row_id()],
    agent: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Hide a suspended mail from the list (its raw copy is kept)."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        suspended_store.mark_deleted(
            session, suspended_id, actor=_actor(agent), now=gateway.clock()
        )
    console.print(f"suspended mail {suspended_id} deleted")


@outbox.command("list")
def outbox_list(
    ctx: typer.Context,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="queued|sending|sent|failed")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LISTED)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List notifications: waiting, failed, or sent."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.read() as session:
        rows = outbox_store.list_outbox(
            session, states=tuple(state) if state else None, limit=limit
        )
    if as_json:
        print_json(
            [
                {
                    "id": r.id,
                    "ticket_id": r.ticket_id,
                    "kind": r.kind,
                    "state": r.state,
                    "recipients": r.recipients.split(","),
                    "subject": r.subject,
                    "message_id": r.message_id,
                    "attempts": r.attempts,
                    "next_attempt_at": r.next_attempt_at.isoformat(),
                    "last_error": r.last_error,
                    "sent_at": r.sent_at.isoformat() if r.sent_at else None,
                }
                for r in rows
            ]
        )
        return
    print_table(
        "Outbox",
        ["id", "ticket", "kind", "state", "to", "tries", "next try", "error"],
        (
            [
                r.id,
                r.ticket_id,
                r.kind,
                r.state,
                r.recipients,
                r.attempts,
                short_time(r.next_attempt_at) if r.state == "queued" else "",
                (r.last_error or "")[:60],
            ]
            for r in rows
        ),
    )


@outbox.command("retry")
def outbox_retry(
    ctx: typer.Context,
    outbox_id: Annotated[int, row_id()],
) -> None:
    """Send a failed (or waiting) notification again, now."""
    gateway = cli_context(ctx).gateway()
    with gateway.db.write() as session:
        row = outbox_store.retry(session, outbox_id, gateway.clock())
    console.print(f"outbox mail {row.id} queued again")
