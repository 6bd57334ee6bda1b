"""The ``mailgate`` command: a thin Typer layer over the gateway and the store."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import admin, mail, mailboxes, ops, queues, relay, tickets
from cli.context import CliContext, setup_logging
from cli.errors import GuardedGroup

app = typer.Typer(
    name="mailgate",
    cls=GuardedGroup,
    help="Mailgate: an email-first helpdesk. Mail in, tickets out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML config file (else $MAILGATE_CONFIG, "
            "else ./mailgate.toml, else built-in defaults)",
            envvar=None,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress")] = False,
) -> None:
    setup_logging(verbose)
    context = CliContext(config)
    ctx.obj = context
    ctx.call_on_close(context.close)


mail.register(app)
ops.register(app)
app.add_typer(tickets.app, name="tickets", help="Work the ticket queue.")
app.add_typer(admin.shops, name="shops", help="Shops of the platform.")
app.add_typer(admin.users, name="users", help="Registered users of the shops.")
app.add_typer(admin.agents, name="agents", help="Support agents.")
app.add_typer(queues.suspended, name="suspended", help="Mails kept but not turned into tickets.")
app.add_typer(queues.outbox, name="outbox", help="Notifications waiting or failed.")
app.add_typer(mailboxes.mailboxes, name="mailboxes", help="IMAP mailboxes Mailgate reads.")
app.add_typer(relay.outbound, name="outbound", help="The way notifications leave.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
