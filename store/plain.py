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

Rows that nothing reads back while their transaction runs (audit events, the outbox, the
notification log) can be held to its end (``held_inserts``, ``insert_later``): a batch's
rows of one table then go in one ``executemany``, which is one round trip to PostgreSQL
instead of one per row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import CursorResult, Executable
from sqlalchemy.engine import Dialect
from sqlmodel import Session

from store.models import Ticket

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


def execute(
    session: Session, statement: Executable, params: Params = None
) -> CursorResult[*tuple[Any, ...]]:
    """``session.execute(statement, params)`` for a statement that reads no changed ticket."""
    return connection(session).execute(statement, params)


def insert_row(session: Session, table: sa.Table, row: Mapping[str, Any]) -> int:
    """``INSERT`` one row into a table with an id column, straight through the database
    driver; returns the new row's id.

    What ``execute(session, sa.insert(table), row)`` does, for a fraction of its cost:
    the statement is compiled once per table and database, and the row's values go
    through the same type conversions SQLAlchemy applies (``bind_processor``); a column
    the row leaves out gets its column default, as SQLAlchemy's insert would give it. The
    engine's ``before_cursor_execute`` listeners still see the statement (its ``echo``
    log does not), and a driver's error is raised as SQLAlchemy's own
    (``IntegrityError``, ``OperationalError``, with a lost connection invalidated), so
    callers and ``store.db`` cannot tell the two apart. It skips SQLAlchemy's
    per-statement machinery (execution context, result object, parameter compilation):
    ~40 µs of the ~50 a small insert took on SQLite, and a mail's commit makes about
    seven (bench/README.md).
    """
    connection, plan = _ready(session, table)
    if not plan.has_id:
        raise TypeError(f"{table.name} has no id column: use insert_rows")
    returned = _run(connection, plan.sql_one, plan.values(row), many=False, plan=plan)
    assert returned is not None
    return returned


def insert_row_with(
    session: Session,
    table: sa.Table,
    row: Mapping[str, Any],
    child: tuple[sa.Table, str, Mapping[str, Any]],
) -> tuple[int, int]:
    """``insert_row(session, table, row)``, and a row of another table that refers to it:
    ``child`` is (that table, the column that holds the new id, the row's other values).
    Returns both new ids. A ticket and its requester as its first participant; a raw
    mail and the message made of it.

    On PostgreSQL both rows go in one statement, a ``WITH`` whose ``INSERT … RETURNING``
    feeds the child's ``INSERT … SELECT``: one round trip instead of two, each of which
    a mail's commit waits for. Elsewhere (SQLite, in the process) two inserts.
    """
    child_table, parent_key, child_row = child
    connection, plan = _ready(session, table)
    child_plan = _plan(child_table, connection.dialect)
    if not (plan.has_id and child_plan.has_id):
        raise TypeError(f"{table.name} and {child_table.name} both need an id column")
    if not plan.returns_id or plan.positional:  # two inserts, as insert_row runs them
        new_id = _run(connection, plan.sql_one, plan.values(row), many=False, plan=plan)
        assert new_id is not None
        child_values = child_plan.values({**child_row, parent_key: new_id})
        child_id = _run(connection, child_plan.sql_one, child_values, many=False, plan=child_plan)
        assert child_id is not None
        return new_id, child_id
    params, child_values = plan.values(row), child_plan.values({**child_row, parent_key: None})
    assert isinstance(params, dict) and isinstance(child_values, dict)
    keys = tuple(key for key in child_plan.keys if key != parent_key)
    params.update({_CHILD_PREFIX + key: child_values[key] for key in keys})
    sql = _together_sql(table, child_table, parent_key, keys, connection.dialect)
    with driver_cursor(connection, sql, params) as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchone()
    assert returned is not None
    return int(returned[0]), int(returned[1])


_CHILD_PREFIX = "child__"  # the child's parameters, apart from the parent's
_together: dict[tuple[str, str, str, tuple[str, ...], str], str] = {}


def _together_sql(
    table: sa.Table, child: sa.Table, parent_key: str, keys: tuple[str, ...], dialect: Dialect
) -> str:
    cache_key = (table.name, child.name, parent_key, keys, dialect.name)
    sql = _together.get(cache_key)
    if sql is None:
        id_column, child_id = table.autoincrement_column, child.autoincrement_column
        assert id_column is not None and child_id is not None
        columns = [c for c in table.columns if c is not id_column]
        if any(c.key.startswith(_CHILD_PREFIX) for c in columns):
            raise ValueError(f"{table.name}: a column name clashes with the child's parameters")
        parent = (
            sa.insert(table)
            .values({c.key: sa.bindparam(c.key, type_=c.type) for c in columns})
            .returning(id_column)
            .cte("new_parent")
        )
        fed = sa.select(
            parent.c[id_column.key],
            *(sa.bindparam(_CHILD_PREFIX + k, type_=child.c[k].type) for k in keys),
        )
        written = (
            sa.insert(child)
            .from_select([parent_key, *keys], fed)
            .returning(child_id)
            .cte("new_child")
        )
        statement = sa.select(parent.c[id_column.key], written.c[child_id.key])
        compiled = statement.compile(dialect=dialect)
        # Every column of both is a parameter of ours: none left to a default that
        # SQLAlchemy would add under the bare column name, the parent's namespace.
        expected = {c.key for c in columns} | {_CHILD_PREFIX + k for k in keys}
        if set(compiled.params) != expected:
            raise ValueError(f"{child.name}: give every column but {parent_key} and the id")
        sql = _together.setdefault(cache_key, compiled.string)
    return sql


def insert_rows(session: Session, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``INSERT`` ``rows`` (none: nothing) in one ``executemany``, as ``insert_row`` does one."""
    if rows:
        connection, plan = _ready(session, table)
        _run(connection, plan.sql_many, [plan.values(row) for row in rows], many=True, plan=plan)


def insert_later(session: Session, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``insert_rows`` now, or, inside ``held_inserts``, when that block ends.

    Only for rows that no statement of the same transaction reads back, or whose readers
    also look at ``held_rows``. A column the table does not have is refused at once.
    Inside a savepoint (opened with ``savepoint``) the rows are written at once: a
    savepoint rolled back must take its rows with it, and only its own.
    """
    held: _Held | None = session.info.get(_HELD)
    if held is None:
        insert_rows(session, table, rows)
        return
    if not rows:
        return
    if session.in_nested_transaction():
        if held:  # written inside the savepoint, they would go back with it
            raise RuntimeError("rows held across a savepoint: open it with plain.savepoint")
        insert_rows(session, table, rows)
        return
    plan = _plan(table, session.get_bind().dialect)
    for row in rows:
        plan.check(row)
    entry = held.get(table.name)
    if entry is None:
        held[table.name] = (table, list(rows))
    else:
        entry[1].extend(rows)


@contextmanager
def held_inserts(session: Session) -> Iterator[None]:
    """Hold the rows given to ``insert_later`` in this block and write them as it ends,
    one ``executemany`` per table, in the order they were given. A block that raises
    writes none of them: its transaction is going back anyway. A savepoint inside it is
    opened with ``savepoint``, which writes the rows held so far first."""
    if _HELD in session.info:
        raise RuntimeError("held_inserts does not nest")
    held: _Held = {}
    session.info[_HELD] = held
    try:
        yield
    finally:
        del session.info[_HELD]
    _write(session, held)


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """``session.begin_nested()``, with the rows held so far written first, so that a
    savepoint rolled back takes back its own rows and no others, and the rows keep the
    order they were given in."""
    held: _Held | None = session.info.get(_HELD)
    if held:
        _write(session, held)
    with session.begin_nested():
        yield


def holding(session: Session) -> bool:
    """True inside ``held_inserts``: ``insert_later`` holds its rows."""
    return _HELD in session.info


def held_rows(session: Session, table: sa.Table) -> Sequence[Mapping[str, Any]]:
    """The rows of ``table`` that ``insert_later`` holds in this session, not yet written."""
    held: _Held | None = session.info.get(_HELD)
    entry = held.get(table.name) if held is not None else None
    return entry[1] if entry is not None else ()


_HELD = "store.plain.held"  # session.info key: the rows of an open held_inserts
_Held = dict[str, tuple[sa.Table, list[Mapping[str, Any]]]]  # by table name, in order


def _write(session: Session, held: _Held) -> None:
    """Write the held rows, one ``executemany`` per table, and forget them."""
    for table, rows in held.values():
        insert_rows(session, table, rows)
    held.clear()


def connection(session: Session) -> sa.Connection:
    """The session's connection, for a statement that reads no changed ticket: what else
    is pending is written first (see the module's text)."""
    if session.autoflush and _pending_besides_tickets(session):
        session.flush()
    return session.connection()


def _ready(session: Session, table: sa.Table) -> tuple[sa.Connection, _InsertPlan]:
    bound = connection(session)
    return bound, _plan(table, bound.dialect)


def _run(
    connection: sa.Connection, sql: str, params: Any, *, many: bool, plan: _InsertPlan
) -> int | None:
    """Run one insert on the session's driver connection; the new id of a single row."""
    with driver_cursor(connection, sql, params, many=many) as cursor:
        if many:
            cursor.executemany(sql, params)
            return None
        cursor.execute(sql, params)
        if plan.returns_id:
            returned = cursor.fetchone()
            assert returned is not None
            return int(returned[0])
        return int(cursor.lastrowid)


@contextmanager
def driver_cursor(
    connection: sa.Connection, sql: str, params: Any, *, many: bool = False
) -> Iterator[Any]:
    """A cursor of the connection's driver, for one statement run on it in the block:
    the engine's ``before_cursor_execute`` listeners are told of the statement first, a
    driver's error comes out as SQLAlchemy's own, and the cursor is closed after."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        listeners = connection.dispatch.before_cursor_execute
        if listeners:
            listeners(connection, cursor, sql, params, None, many)
        try:
            yield cursor
        except connection.dialect.loaded_dbapi.Error as exc:
            raise as_sqlalchemy_error(connection, cursor, sql, params, exc) from exc
    finally:
        cursor.close()


@dataclass(frozen=True, slots=True)
class _InsertPlan:
    """A table's ``INSERT`` compiled for one database, with how to turn a row into its
    parameters."""

    sql_one: str
    sql_many: str
    keys: tuple[str, ...]
    known: frozenset[str]  # the keys, to check a row's against
    defaults: tuple[Any, ...]
    convert: tuple[Callable[[Any], Any] | None, ...]
    positional: bool
    has_id: bool
    returns_id: bool

    def check(self, row: Mapping[str, Any]) -> None:
        """Refuse a row with a key that is not one of the table's columns (its id included)."""
        unknown = row.keys() - self.known
        if unknown:
            raise KeyError(f"no such column: {', '.join(sorted(unknown))}")

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        self.check(row)
        values = [
            value if (value := row.get(key, default)) is None or convert is None else convert(value)
            for key, default, convert in zip(self.keys, self.defaults, self.convert, strict=True)
        ]
        return tuple(values) if self.positional else dict(zip(self.keys, values, strict=True))


_plans: dict[tuple[str, str], _InsertPlan] = {}
_plans_lock = threading.Lock()


def _plan(table: sa.Table, dialect: Dialect) -> _InsertPlan:
    key = (table.name, dialect.name)
    plan = _plans.get(key)
    if plan is None:
        with _plans_lock:
            plan = _plans.setdefault(key, _compile_plan(table, dialect))
    return plan


def _compile_plan(table: sa.Table, dialect: Dialect) -> _InsertPlan:
    id_column = table.autoincrement_column
    columns = [column for column in table.columns if column is not id_column]
    keys = tuple(column.key for column in columns)
    many = sa.insert(table).compile(dialect=dialect, column_keys=list(keys))
    if many.positional:
        assert tuple(many.positiontup or ()) == keys, "the insert's parameters out of order"
    # SQLite's driver has the new row's id at hand (lastrowid); PostgreSQL's must be asked
    # for it with RETURNING.
    returns_id = id_column is not None and not getattr(dialect, "postfetch_lastrowid", True)
    one = many
    if returns_id:
        assert id_column is not None
        one = sa.insert(table).returning(id_column).compile(dialect=dialect, column_keys=list(keys))
    return _InsertPlan(
        sql_one=one.string,
        sql_many=many.string,
        keys=keys,
        known=frozenset(keys),
        defaults=tuple(_scalar_default(column) for column in columns),
        convert=tuple(_converter(column, dialect) for column in columns),
        positional=many.positional,
        has_id=id_column is not None,
        returns_id=returns_id,
    )


def _converter(column: sa.Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _scalar_default(column: sa.Column[Any]) -> Any:
    default = column.default
    if default is None:
        return None
    if not getattr(default, "is_scalar", False):
        raise TypeError(f"{column}: only scalar column defaults are supported by insert()")
    return default.arg  # type: ignore[attr-defined]


def as_sqlalchemy_error(
    connection: sa.Connection, cursor: Any, sql: str, params: Any, exc: Any
) -> sa.exc.DBAPIError:
    dialect = connection.dialect
    lost = dialect.is_disconnect(exc, connection.connection.dbapi_connection, cursor)
    if lost:
        connection.invalidate(exc)
    error = sa.exc.DBAPIError.instance(
        sql,
        params,
        exc,
        dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=dialect,
    )
    assert isinstance(error, sa.exc.DBAPIError)
    return error


def _pending_besides_tickets(session: Session) -> bool:
    return bool(
        session.new
        or session.deleted
        or any(not isinstance(changed, Ticket) for changed in session.dirty)
    )
