"""The migrations build exactly the schema the models describe, on both databases.

Since version 0001 has been released, every change to ``store/models.py`` needs a new
revision (``scripts/new-migration``); this test fails when one is forgotten or when a
hand-written revision drifts from the models.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import store.models  # noqa: F401  (registers the tables)
from store.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    include_object,
    upgrade,
)


def _differences(url: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": include_object}
            )
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection")
def test_the_migrations_build_the_models_schema_on_sqlite(sqlite_url: str) -> None:
    assert _differences(sqlite_url) == []


@pytest.mark.postgres
def test_the_migrations_build_the_models_schema_on_postgresql(fresh_pg_database: str) -> None:
    assert _differences(fresh_pg_database) == []


def test_the_revisions_form_one_line() -> None:
    """One head, each revision's parent the one before: no branch left from a merge."""
    scripts = ScriptDirectory.from_config(alembic_config())
    assert len(scripts.get_heads()) == 1
    chain = list(scripts.walk_revisions())
    assert chain[-1].down_revision is None
    for newer, older in itertools.pairwise(chain):
        assert newer.down_revision == older.revision
