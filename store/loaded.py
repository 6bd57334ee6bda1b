"""Model objects built as the ORM builds the ones it loads, for rows written by a plain
``INSERT``.

``Ticket(...)`` runs SQLModel's constructor: every one of the model's ~45 fields is set
through SQLAlchemy's attribute instrumentation, which cost a new ticket more than its
``INSERT`` did (bench/README.md). ``as_loaded`` makes the instance the way SQLAlchemy
makes one for a row it reads (the class's ``__new__``, which for SQLModel also sets
pydantic's private attributes, then the values straight into the instance's
``__dict__``), so that later changes to it are still tracked and written.
"""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlalchemy.orm import configure_mappers
from sqlmodel import SQLModel

M = TypeVar("M", bound=SQLModel)


def column_defaults(model: type[SQLModel]) -> dict[str, Any]:
    """The model's default for each of its columns that has one (a constant: a field
    with a default factory is left out, as is a required one)."""
    columns = {column.key for column in sa.inspect(model).columns}
    return {
        name: field.default
        for name, field in model.model_fields.items()
        if name in columns and field.default is not PydanticUndefined
    }


def as_loaded(model: type[M], values: dict[str, Any]) -> M:
    """An instance of table model ``model`` holding ``values``, which must name every
    column (a missing one would be loaded from the database on first use)."""
    mapper = sa.inspect(model)
    if not mapper.configured:  # as the constructor would, before the first instance
        configure_mappers()
    instance: M = mapper.class_manager.new_instance()
    instance.__dict__.update(values)
    return instance
