"""Schema migrations with alembic, driven from code (no alembic.ini needed).

``upgrade(engine)`` is called by every command on start: it compares the database's
revision with the newest script and only runs alembic when they differ. On PostgreSQL an
advisory lock makes concurrent starts of several gateways take turns.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_ID = 0x6D61696C  # "mail"

# Objects the models cannot express, made by hand-written revisions (0002: the full-text
# search tables and an expression index SQLite cannot reflect; 0003: the covering indexes
# of stats, whose columns differ per database): autogenerate leaves them be.
HAND_MADE_TABLE_PREFIX = "ticket_search"
HAND_MADE_INDEXES = frozenset(
    {"ix_tickets_backlog_due", "ix_tickets_stats", "ix_tickets_stats_responder"}
)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """alembic's filter: compare every object except those the hand-written revisions own."""
    if type_ == "table" and name and name.startswith(HAND_MADE_TABLE_PREFIX):
        return False
    return not (type_ == "index" and name in HAND_MADE_INDEXES)


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    head = head_revision()
    with engine.connect() as connection:
        if current_revision(connection) == head and revision == "head":
            connection.rollback()
            return
        connection.rollback()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
        command.upgrade(alembic_config(connection), revision)
