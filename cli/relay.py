"""``outbound test``: is the relay configured right? One mail, one line."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import cli_context
from cli.errors import fail
from cli.render import console
from mailgate.clock import utc_now
from mailgate.errors import TransportError
from mailgate.outbound.relay_check import send_test_mail
from mailgate.outbound.transports import transport_from_settings

outbound = typer.Typer(no_args_is_help=True)


@outbound.command("test")
def outbound_test(
    ctx: typer.Context,
    to: Annotated[
        str | None, typer.Option("--to", help="recipient (default: the outbound From address)")
    ] = None,
) -> None:
    """Send a test mail through the configured transport now (not through the outbox)."""
    settings = cli_context(ctx).settings.outbound
    transport = transport_from_settings(settings)
    try:
        line = send_test_mail(settings, transport, to=to, clock=utc_now)
    except TransportError as exc:
        fail(f"outbound test failed: {exc}")
    console.print(line, markup=False)
