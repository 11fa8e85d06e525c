"""Hand-written SQL for the store's hot paths, on SQLite and Postgres alike.

The ORM spends more Python time building a query than either database spends running
it; on the paths every IMAP command and every delivery takes, plain statements built
once from the models' metadata (tables and columns quoted for the backend) are several
times cheaper. Values go in through each field's own preparation and come back through
the converters the ORM itself applies, so callers see what the ORM would give them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

from django.db import connection
from django.db.models import JSONField, Model
from django.db.models.expressions import Col

Converter = Callable[..., object]


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    return quote(model._meta.get_field(name).column)


def columns(model: type[Model], names: Iterable[str]) -> str:
    return ", ".join(column(model, name) for name in names)


def for_update() -> str:
    """Return " FOR UPDATE" where the database locks rows (SQLite locks the whole file)."""
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


def prep(model: type[Model], name: str, value: object) -> object:
    """Return a value as the database takes it for a model's field."""
    return model._meta.get_field(name).get_db_prep_save(value, connection)


@functools.cache
def _converters(vendor: str, model: type[Model], names: tuple[str, ...]
                ) -> tuple[tuple[int, list[Converter], Col], ...]:
    found = []
    for index, name in enumerate(names):
        field = model._meta.get_field(name)
        expression = Col(model._meta.db_table, field)
        functions = [*connection.ops.get_db_converters(expression),
                     *expression.get_db_converters(connection)]
        if isinstance(field, JSONField) and functions == [field.from_db_value]:
            functions = [_json_list_first(field)]
        if functions:
            found.append((index, functions, expression))
    return tuple(found)


def _json_list_first(field: JSONField) -> Converter:
    """JSONField's converter, with the empty list (most messages' keywords) decoded at once."""
    def convert(value, expression, connection):
        return [] if value == "[]" else field.from_db_value(value, expression, connection)
    return convert


def decode(model: type[Model], names: Sequence[str], rows: Iterable[Sequence]) -> list[list]:
    """Return rows of a model's columns (in the order of names) as the ORM would load them."""
    plan = _converters(connection.vendor, model, tuple(names))
    out = []
    for row in rows:
        row = list(row)
        for index, functions, expression in plan:
            value = row[index]
            for function in functions:
                value = function(value, expression, connection)
            row[index] = value
        out.append(row)
    return out


def ranges_condition(name: str, ranges: Sequence[tuple[int, int]]) -> tuple[str, list[int]]:
    """Return ("(c = %s OR c BETWEEN %s AND %s ...)", parameters) for inclusive ranges."""
    parts, params = [], []
    for low, high in ranges:
        if low == high:
            parts.append(f"{name} = %s")
            params.append(low)
        else:
            parts.append(f"{name} BETWEEN %s AND %s")
            params += [low, high]
    return "(" + " OR ".join(parts) + ")", params
