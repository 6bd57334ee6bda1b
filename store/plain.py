"""Plain statements beside the unit of work: run without first writing the tickets the
session has changed.

The pipeline changes a ticket it holds as an object (``updated_at``, its SLA clock), and
the session writes such changes before the next statement it runs (autoflush): for a
reply, one flush of one ticket per mail, each costing several times the ``UPDATE`` it
sends. The statements run here read no ticket the session holds (a ticket row it does
not hold yet, at most) and no table a ticket's triggers write, so changed tickets can
wait: they are written by the next statement that may read them, or at the commit, many
in one flush. Anything else pending (a new object, a deleted one, another changed row)
is written first, as autoflush would, so rows keep their order and every read sees them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import CursorResult, Executable
from sqlmodel import Session

from store.models import Ticket

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


def execute(
    session: Session, statement: Executable, params: Params = None
) -> CursorResult[*tuple[Any, ...]]:
    """``session.execute(statement, params)`` for a statement that reads no changed ticket."""
    if session.autoflush and _pending_besides_tickets(session):
        session.flush()
    return session.connection().execute(statement, params)


def _pending_besides_tickets(session: Session) -> bool:
    return bool(
        session.new
        or session.deleted
        or any(not isinstance(changed, Ticket) for changed in session.dirty)
    )


def inserted_id(result: CursorResult[*tuple[Any, ...]]) -> int:
    """The id of the row a single-row ``INSERT`` (without ``RETURNING``) wrote: SQLite's
    last rowid, which the driver has at hand, where ``RETURNING`` makes SQLAlchemy fetch
    and process a result row; PostgreSQL's ``RETURNING``, which SQLAlchemy adds itself."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])
