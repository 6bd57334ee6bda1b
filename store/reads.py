"""Plain reads straight through the database driver, for the statements every batch of
mail runs before its first mail (``StoreReader.look_ahead``, the send limits' counts).

``fetch(session, statement, params)`` is ``plain.execute(...).all()`` for a fixed
``SELECT``: the statement is compiled once per database, its parameters and the columns
it returns go through the same type conversions SQLAlchemy applies (``bind_processor``,
``result_processor``), and the rows come back as tuples. It skips SQLAlchemy's
per-statement machinery (execution context, cache look-up, result object), which cost
most of the 240-360 µs of CPU such a statement took on SQLite (bench/README.md). As in
``plain.insert_row``, ``before_cursor_execute`` listeners still see the statement and a
driver's error is raised as SQLAlchemy's own.

A list of values to match goes in one parameter, ``in_list(column, name)``, so that the
SQL is the same whatever the list's length (SQLAlchemy's expanding ``IN`` renders one
placeholder per value, a new statement for each length): ``column IN (SELECT value FROM
json_each(?))`` on SQLite, ``column = ANY(%(name)s)`` on PostgreSQL, each answered
through the column's index.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlmodel import Session

from store import plain


class _ValueList(sa.types.TypeDecorator[Sequence[Any]]):
    """A list of values as one parameter: JSON text for SQLite's ``json_each``, an array
    for PostgreSQL."""

    impl = sa.types.NullType  # no cast: the list is of the column's type
    cache_ok = True

    def process_bind_param(self, value: Sequence[Any] | None, dialect: Dialect) -> Any:
        values = list(value or ())
        return json.dumps(values) if dialect.name == "sqlite" else values


class _InList(ColumnElement[bool]):
    inherit_cache = True
    # What the statement's cache key is made of: without it a statement holding the
    # condition has no key, and SQLAlchemy compiles it at every execution (an UPDATE
    # run through ``Session.execute``, 0.2 ms each).
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]
    type = sa.Boolean()
    _is_implicitly_boolean = True  # a condition as it stands: no "= 1" after it on SQLite

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.values = sa.bindparam(name, type_=_ValueList())


def in_list(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column`` is one of the values of parameter ``name`` (a list; empty: none)."""
    return _InList(column, name)


@compiles(_InList, "sqlite")
def _in_json_each(element: _InList, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} IN (SELECT value FROM json_each({compiler.process(element.values, **kw)}))"


@compiles(_InList, "postgresql")
def _in_array(element: _InList, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} = ANY({compiler.process(element.values, **kw)})"


@compiles(_InList)
def _in_expanding(element: _InList, compiler: SQLCompiler, **kw: Any) -> str:
    expanding: sa.BindParameter[Any] = sa.bindparam(element.values.key, expanding=True)
    return compiler.process(element.column.in_(expanding), **kw)  # any other database


def fetch(
    session: Session, statement: sa.Select[Any] | sa.CompoundSelect[Any], params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """The rows ``statement`` returns for ``params``, as tuples (see the module's text).
    The statement must be built once (a module constant): its compiled form is kept."""
    return fetch_together(session, (statement, params))[0]


Read = tuple[sa.Select[Any] | sa.CompoundSelect[Any], Mapping[str, Any]]


def fetch_together(session: Session, *reads: Read) -> list[list[tuple[Any, ...]]]:
    """The rows of each ``(statement, params)``, as ``fetch`` gives them, for statements
    that do not depend on each other's answers: on PostgreSQL they go in one round trip
    (psycopg's pipeline mode), where each alone waited for its answer before the next
    was sent; on SQLite, with no network between, one after another."""
    connection = plain.connection(session)
    dialect = connection.dialect
    planned = [
        (plan := _plan(statement, dialect), plan.parameters(params)) for statement, params in reads
    ]
    if len(planned) > 1 and dialect.name == "postgresql":
        answers = _pipelined(connection, planned)
    else:
        answers = [_answer(connection, plan, values) for plan, values in planned]
    return [
        _converted(plan, dialect, rows, description)
        for (plan, _), (rows, description) in zip(planned, answers, strict=True)
    ]


_Answer = tuple[list[Any], Sequence[Sequence[Any]]]  # the driver's rows, and their description


def _answer(connection: sa.Connection, plan: _ReadPlan, values: Any) -> _Answer:
    with plain.driver_cursor(connection, plan.sql, values) as cursor:
        cursor.execute(plan.sql, values)
        return cursor.fetchall(), cursor.description


def _pipelined(connection: sa.Connection, planned: list[tuple[_ReadPlan, Any]]) -> list[_Answer]:
    """Send every statement, then read every answer (psycopg's ``Connection.pipeline``),
    with the engine's listeners told of each and a driver's error raised as
    SQLAlchemy's, as ``plain.driver_cursor`` does for one."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    listeners = connection.dispatch.before_cursor_execute
    cursors: list[Any] = []
    try:
        try:
            with raw.pipeline():
                for plan, values in planned:
                    cursor = raw.cursor()
                    cursors.append(cursor)
                    if listeners:
                        listeners(connection, cursor, plan.sql, values, None, False)
                    cursor.execute(plan.sql, values)
            return [(cursor.fetchall(), cursor.description) for cursor in cursors]
        except connection.dialect.loaded_dbapi.Error as exc:
            # Raised when the answers are read: any of the statements may have failed.
            sql = ";\n".join(plan.sql for plan, _ in planned)
            params = [values for _, values in planned]
            raise plain.as_sqlalchemy_error(connection, None, sql, params, exc) from exc
    finally:
        for cursor in cursors:
            cursor.close()


def _converted(
    plan: _ReadPlan, dialect: Dialect, rows: list[Any], description: Sequence[Sequence[Any]]
) -> list[tuple[Any, ...]]:
    convert = plan.convert or plan.converters(dialect, description)
    if not any(convert):
        return [tuple(row) for row in rows]
    return [
        tuple(
            value if to is None or value is None else to(value)
            for to, value in zip(convert, row, strict=True)
        )
        for row in rows
    ]


def column_names(statement: sa.Select[Any] | sa.CompoundSelect[Any]) -> tuple[str, ...]:
    """The names of the columns ``statement`` returns, in order (for rows of ``fetch``)."""
    return tuple(str(column.key) for column in statement.selected_columns)


@dataclass(slots=True)
class _ReadPlan:
    statement: sa.Select[Any] | sa.CompoundSelect[Any]  # held: its id is not reused
    sql: str
    compiled: SQLCompiler
    names: tuple[str, ...] | None  # the parameters in order, for a positional driver
    bind: dict[str, Callable[[Any], Any]]
    # What turns each column's value into SQLAlchemy's: known at the first run, for some
    # types ask for the driver's column type (PostgreSQL's numbers).
    convert: tuple[Callable[[Any], Any] | None, ...] | None = None

    def converters(
        self, dialect: Dialect, description: Sequence[Sequence[Any]]
    ) -> tuple[Callable[[Any], Any] | None, ...]:
        columns = self.statement.selected_columns
        self.convert = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, described[1])
            for column, described in zip(columns, description, strict=True)
        )
        return self.convert

    def parameters(self, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = dict(self.compiled.construct_params(params))  # with the statement's own
        for name, to in self.bind.items():
            if values.get(name) is not None:
                values[name] = to(values[name])
        if self.names is None:
            return values
        return tuple(values[name] for name in self.names)


_plans: dict[tuple[int, str], _ReadPlan] = {}
_plans_lock = threading.Lock()


def _plan(statement: sa.Select[Any] | sa.CompoundSelect[Any], dialect: Dialect) -> _ReadPlan:
    key = (id(statement), dialect.name)
    plan = _plans.get(key)
    if plan is None or plan.statement is not statement:
        with _plans_lock:
            plan = _compile(statement, dialect)
            _plans[key] = plan
    return plan


def _compile(statement: sa.Select[Any] | sa.CompoundSelect[Any], dialect: Dialect) -> _ReadPlan:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    binds = compiled.binds
    if any(bind.expanding for bind in binds.values()):
        raise TypeError("fetch takes no expanding IN: use in_list")
    bind: dict[str, Callable[[Any], Any]] = {}
    for name, parameter in binds.items():
        to = parameter.type.dialect_impl(dialect).bind_processor(dialect)
        if to is not None:
            bind[name] = to
    positions = compiled.positiontup or ()
    return _ReadPlan(
        statement=statement,
        sql=compiled.string,
        compiled=compiled,
        names=tuple(positions) if compiled.positional else None,
        bind=bind,
    )


__all__ = ["column_names", "fetch", "fetch_together", "in_list"]
