"""What a transaction reads over and over, read once: the active agents and the meta switches.

Every mail of a committing batch asks who the agents are (identify, sector notices, send
limits) and whether peak mode is on. Those tables are small and change rarely, so the
answer is remembered for the life of the session (``Database.write()`` opens one per
batch) and forgotten the moment the session adds, changes or deletes an ``Agent`` or a
``MetaValue`` row, or its transaction ends. Another gateway's change is seen from the
next batch on, as a read inside the transaction would see it on PostgreSQL's read
committed at the latest at the next statement.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction

from store.models import Agent, MetaValue

T = TypeVar("T")
_KEY = "mailgate.memo"
_WATCHED = (Agent, MetaValue)


def remembered(session: Session, key: object, compute: Callable[[], T]) -> T:
    """``compute()``, or what it gave earlier in this session."""
    memo: dict[object, Any] = session.info.setdefault(_KEY, {})
    try:
        value: T = memo[key]
    except KeyError:
        value = memo[key] = compute()
    return value


def is_remembered(session: Session, key: object) -> bool:
    """Whether ``remembered`` would answer ``key`` without computing it."""
    return key in session.info.get(_KEY, ())


def forget(session: Session) -> None:
    session.info.pop(_KEY, None)


@event.listens_for(Session, "after_attach")
def _on_attach(session: Session, instance: object) -> None:
    if isinstance(instance, _WATCHED):
        forget(session)


@event.listens_for(Session, "after_flush")
def _on_flush(session: Session, _context: UOWTransaction) -> None:
    if _KEY in session.info and any(
        isinstance(o, _WATCHED) for o in chain(session.new, session.dirty, session.deleted)
    ):
        forget(session)


@event.listens_for(Session, "after_transaction_end")
def _on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        forget(session)


@event.listens_for(Session, "after_soft_rollback")
def _on_rollback(session: Session, _previous: SessionTransaction) -> None:
    forget(session)
