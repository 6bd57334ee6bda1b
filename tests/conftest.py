"""Shared fixtures: settings in a temporary folder, and a store on SQLite or PostgreSQL.

PostgreSQL tests run against the server at 127.0.0.1:5432 (trust auth), in a database
created for this test run and dropped afterwards. They are skipped when no server answers,
unless ``MAILGATE_REQUIRE_POSTGRES=1`` (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from dns_server import LoopbackDns
from mailgate_testing import empty_store

if TYPE_CHECKING:
    from store.db import Database

DNS_ENV = "MAILGATE_AUTH_DNS_RESOLVER"

PG_ADMIN_URL = os.environ.get(
    "MAILGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def _new_pg_database(prefix: str) -> Iterator[str]:
    """Create a database on the test server, yield its URL, drop it afterwards."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("MAILGATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but unreachable: {exc.orig}")
        pytest.skip("no PostgreSQL server at 127.0.0.1:5432")
    url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database for this test run (dropped at the end)."""
    with _new_pg_database("mailgate_test") as url:
        yield url


@pytest.fixture
def fresh_pg_database() -> Iterator[str]:
    """The URL of a PostgreSQL database made for one test, with no schema yet."""
    with _new_pg_database("mailgate_fresh") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL on each database: SQLite in tmp_path, or the run's PostgreSQL, emptied."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/mailgate.db"
        return
    url: str = request.getfixturevalue("pg_database")
    from store.db import Database

    database = Database(url)
    database.upgrade()
    database.dispose()
    empty_store(url)
    yield url


@pytest.fixture
def db(store_url: str) -> Iterator[Database]:
    """A migrated store on each database (``store_url``)."""
    from store.db import Database

    database = Database(store_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite store URL in tmp_path, for tests that need one database only."""
    return f"sqlite:///{tmp_path}/mailgate.db"


@pytest.fixture(scope="session", autouse=True)
def loopback_dns() -> Iterator[LoopbackDns]:
    """The run's DNS server on 127.0.0.1, for every gateway the tests build.

    Public DNS is the one thing the tests fake: every look-up Mailgate makes (DKIM keys,
    DMARC policies) goes to this real UDP server through ``$MAILGATE_AUTH_DNS_RESOLVER``,
    which subprocesses and CLI runs inherit, so no test ever asks the internet.
    """
    server = LoopbackDns()
    previous = os.environ.get(DNS_ENV)
    os.environ[DNS_ENV] = server.address
    try:
        yield server
    finally:
        if previous is None:
            os.environ.pop(DNS_ENV, None)
        else:
            os.environ[DNS_ENV] = previous
        server.stop()


@pytest.fixture
def dns(loopback_dns: LoopbackDns) -> Iterator[LoopbackDns]:
    """The loopback DNS server, emptied after the test (records, failures, query log)."""
    yield loopback_dns
    loopback_dns.reset()
