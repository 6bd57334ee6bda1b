"""Named values kept in the store and shared by all gateways: the server secret, switches."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from store.db import Database
from store.memo import remembered
from store.models import MetaValue
from store.reads import fetch


def get_value(session: Session, key: str) -> str | None:
    """The value of ``key`` (read once per transaction), None when it has none."""

    def read() -> str | None:
        # A plain statement, not ``session.get``: every batch asks (peak mode), and the
        # ORM's way cost several times the statement (bench/README.md). A value the
        # session holds unwritten is written first (``store.reads.fetch``), so it is seen.
        rows = fetch(session, _VALUE, {"key": key})
        return str(rows[0][0]) if rows else None

    return remembered(session, ("meta", key), read)


_META: sa.Table = MetaValue.__table__  # type: ignore[attr-defined]
_VALUE = sa.select(_META.c.value).where(_META.c.key == sa.bindparam("key"))


def set_value(session: Session, key: str, value: str) -> None:
    row = session.get(MetaValue, key)
    if row is None:
        session.add(MetaValue(key=key, value=value))
    else:
        row.value = value
        session.add(row)


def server_secret(db: Database) -> bytes:
    """The secret that signs our Message-IDs, made once and shared through the store."""
    with db.read() as session:
        found = get_value(session, "server_secret")
    if found is not None:
        return bytes.fromhex(found)
    try:
        with db.write() as session:
            if get_value(session, "server_secret") is None:
                set_value(session, "server_secret", secrets.token_hex(32))
    except IntegrityError:
        pass  # another gateway made it at the same moment; use theirs
    with db.read() as session:
        made = get_value(session, "server_secret")
    assert made is not None
    return bytes.fromhex(made)
