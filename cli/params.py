"""Arguments that several commands take alike."""

from __future__ import annotations

from typing import Any

import typer

# The largest id a row can have in both databases (PostgreSQL's integer): a larger number
# is a usage error of its own, not one the database raises.
MAX_ID = 2**31 - 1
MAX_LISTED = 10_000  # rows a listing's --limit may ask for (as tickets list)


def row_id(metavar: str = "ID", help: str | None = None) -> Any:
    """The argument naming a ticket, a suspended mail or an outbox mail by its id."""
    return typer.Argument(metavar=metavar, help=help, min=1, max=MAX_ID)
