"""Hand-written SQL for the hot paths, on SQLite and Postgres alike: the one statement pattern.

The ORM spends more Python time building a query than either database spends running
it; on the paths every IMAP command, every RCPT and every delivery takes, plain statements
are several times cheaper (the figures are beside each concern's statements: delivery.py,
messages.py, directory.py). Every concern writes them the same way:

- statements are built once per database vendor (and per arguments), on first use, by a
  function decorated with @statements;
- tables and columns are named through render() ("{message.uid}"), from the models'
  metadata, so a renamed field fails loudly when the statement is built, never silently
  in the database;
- values go in through the field's own preparation (prep()) and rows come back through
  decode(), which applies the converters the ORM itself applies: callers see what the ORM
  would give them (aware datetimes, decoded JSON, bools).

This is the only module that touches Django's internals for that, because the ORM has no
public API for "decode this raw row as you would": `Col`, the backend's and the
expression's `get_db_converters`, `JSONField.from_db_value`, and for icontains the
backend's `lookup_cast`, `operators` and `prep_for_like_query`. tests/test_store_sql.py
pins each of them, so a Django upgrade that changes one fails there first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from django.db import connection
from django.db.models import (
    AutoField,
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    IntegerField,
    JSONField,
    Model,
    PositiveBigIntegerField,
    PositiveIntegerField,
    TextField,
)
from django.db.models.expressions import Col  # internal: the ORM's column expression

Converter = Callable[..., object]
T = TypeVar("T")


def statements(build: Callable[..., T]) -> Callable[..., T]:
    """Cache what build returns (statement texts) per database vendor and arguments.

    The statements of a concern are built on first use, not at import: quoting and
    features depend on the connection, which is not configured while modules load.
    """
    built: dict[tuple, T] = {}

    @functools.wraps(build)
    def cached(*args):
        key = (connection.vendor, *args)
        try:
            return built[key]
        except KeyError:
            found = built[key] = build(*args)
            return found

    return cached


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    """Return a field's quoted column; name is the field's name or attname ("folder_id")."""
    return quote(model._meta.get_field(name).column)


def columns(model: type[Model], names: Iterable[str]) -> str:
    return ", ".join(column(model, name) for name in names)


class Names:
    """A model as statements name it: formatted, its quoted table; attributes, its columns."""

    def __init__(self, model: type[Model]) -> None:
        self._model = model

    def __format__(self, spec: str) -> str:
        return table(self._model)

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        found = column(self._model, name)
        setattr(self, name, found)  # looked up once: search translates keys per command
        return found


def render(template: str, **models: type[Model]) -> str:
    """Return template with "{name}" as a model's quoted table, "{name.field}" its column.

    A doubled brace ("{{uids}}") is left for the caller to fill in per call.
    """
    return template.format(**{name: Names(model) for name, model in models.items()})


def select(model: type[Model], names: Sequence[str], where: str) -> str:
    """Return "SELECT <names' columns> FROM <model's table> WHERE <where>" (where: rendered)."""
    return f"SELECT {columns(model, names)} FROM {table(model)} WHERE {where}"


def for_update() -> str:
    """Return " FOR UPDATE" where the database locks rows (SQLite locks the whole file)."""
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


def prep(model: type[Model], name: str, value: object) -> object:
    """Return a value as the database takes it for a model's field."""
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def prep_row(model: type[Model], names: tuple[str, ...], values: dict) -> list:
    """Return [prep(model, name, values[name]) for name in names], in less time: a value
    its field would hand over unchanged (a str for a text field, a bool for a boolean, an
    int for an integer where the backend passes ints as they are) skips the preparation."""
    row = []
    for (name, prepare, same) in _preparers(connection.vendor, model, names):
        value = values[name]
        row.append(value if type(value) is same else prepare(value, connection))
    return row


@functools.cache
def _preparers(vendor: str, model: type[Model], names: tuple[str, ...]
               ) -> tuple[tuple[str, Callable[..., object], type | None], ...]:
    # Field.get_prep_value() of these types returns such a value as it is (to_python() on
    # a str, a bool; int() on an int), and get_db_prep_value() adds only the backend's
    # adapt_integerfield_value(), which some backends (Postgres: typed ints) do not leave
    # as it is: asked of the field.
    found = []
    for name in names:
        field = model._meta.get_field(name)
        target = field.target_field if field.is_relation else field
        same: type | None = None
        if type(target) in (CharField, TextField):
            same = str
        elif type(target) is BooleanField:
            same = bool
        elif type(target) in (IntegerField, BigIntegerField, AutoField, BigAutoField,
                              PositiveIntegerField, PositiveBigIntegerField):
            same = int if type(target.get_db_prep_save(1, connection)) is int else None
        found.append((name, field.get_db_prep_save, same))
    return tuple(found)


@functools.cache
def _converters(vendor: str, model: type[Model], names: tuple[str, ...]
                ) -> tuple[tuple[int, list[Converter], Col], ...]:
    # What the ORM's SQLCompiler.get_converters() collects for these columns.
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
    return [list(row) for row in decode_rows(model, names, rows)]


def decode_rows(model: type[Model], names: Sequence[str],
                rows: Iterable[Sequence]) -> Iterable[tuple]:
    """decode() as tuples, converted a column at a time.

    A column without converters is not touched; SQLite's booleans (0 and 1) are mapped
    by a dict in C rather than by a call of the backend's converter per value: a FETCH
    of 50,000 messages' flags decodes 250,000 of them.
    """
    plan = _converters(connection.vendor, model, tuple(names))
    rows = list(rows)
    if not plan or not rows:
        return [tuple(row) for row in rows]
    columns = list(zip(*rows, strict=True))
    # (The cached plan holds the first connection's bound methods: compare functions.)
    booleans = getattr(type(connection.ops), "convert_booleanfield_value", None)
    for index, functions, expression in plan:
        column = columns[index]
        for function in functions:
            if booleans is not None and getattr(function, "__func__", None) is booleans:
                column = list(map(_BOOLEANS.get, column, column))
            else:
                column = [function(value, expression, connection) for value in column]
        columns[index] = column
    return zip(*columns, strict=True)


# SQLite's (and MySQL's) convert_booleanfield_value: bool(value) if value in (1, 0).
_BOOLEANS = {1: True, 0: False}


def icontains(column_sql: str, value: str) -> tuple[str, list[str]]:
    """Return (condition, parameters): column icontains value, as the ORM writes it here."""
    lhs = connection.ops.lookup_cast("icontains", "TextField") % column_sql
    pattern = f"%{connection.ops.prep_for_like_query(value)}%"
    return f"{lhs} {connection.operators['icontains'] % '%s'}", [pattern]


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
