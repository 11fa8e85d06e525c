"""SEARCH over a folder: one query on the cached columns; blobs opened only for what remains.

The key tree is the message model's (mailcore.message.searchkeys). Everything the
message rows hold (flags, keywords, size, dates, the cached From/To/Cc/Subject, UID,
modseq) becomes one SQL condition; keys that need the message itself (BODY, TEXT, BCC and
other header fields) are checked in Python, and only on the rows the SQL part let through.

The tree is simplified first (NOT NOT x is x; chains of OR and nested AND lists become one
list each), so the deep programs clients may send (100 nested NOT, 100 chained OR) give
flat SQL. A key whose SQL would still nest past what SQLite's parser takes is checked in
Python like the text keys: slower, never wrong.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32

from django.db import connection
from django.utils import timezone

from mailcore.message.address import parse_addresses
from mailcore.message.searchkeys import (
    AgeKey,
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NotKey,
    OrKey,
    SearchKey,
    SetKey,
    SizeKey,
    TextKey,
)
from mailcore.message.sequenceset import SequenceSet
from mailcore.message.summary import decode_text, split_header_block
from mailcore.models import Message
from mailcore.store import sql
from mailcore.store.blobs import blob_store
from mailcore.store.fulltext import body_text as _body_text
from mailcore.store.messages import MAX_UID_RANGES, SYSTEM_FLAGS, MessageRow

_CACHED_HEADERS = {"subject": "subject", "from": "from_addr", "to": "to_addrs",
                   "cc": "cc_addrs"}  # header: Message field
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "sender", "reply-to"})
_NOTHING = ("1 = 0", [])
_EVERYTHING = ("1 = 1", [])
_ROW_FIELDS = ("id", "uid", "modseq", "size", "internal_date", "sent_on", "blob_id",
               "keywords", *SYSTEM_FLAGS.values(), *_CACHED_HEADERS.values())

# SQLite's parser has a fixed stack (YYSTACKDEPTH, 100 entries), which parenthesised
# conditions fill at two or three entries a level: "NOT (" 46 deep overflows it, and so
# does "((a) OR (" 23 deep. Keep well below, with room for the rest of the statement.
MAX_SQL_NESTING = 20

Condition = tuple[str, list]  # an SQL condition on the message table, and its parameters


@dataclass(frozen=True)
class _Statements:
    """SEARCH's statements around the condition it builds per command (mailcore.store.sql)."""

    m: sql.Names  # the message table and its columns, for the conditions
    uids: str  # {where}: the condition
    rows: str  # {where}: the condition


@sql.statements
def _sql() -> _Statements:
    m = sql.Names(Message)
    return _Statements(
        m=m,
        uids=f"SELECT {m.uid}, {m.modseq} FROM {m} WHERE {{where}} ORDER BY {m.uid}",
        rows=(f"SELECT {sql.columns(Message, _ROW_FIELDS)} FROM {m} WHERE {{where}} "
              f"ORDER BY {m.uid}"),
    )


@dataclass(frozen=True)
class AnyKey:
    """OR over several keys: a chain of the grammar's binary OrKeys, flattened."""

    keys: tuple[SearchKey | AnyKey, ...]


def search(folder_id: int, key: SearchKey, max_uid: int,
           now: datetime | None = None) -> list[tuple[int, int]]:
    """Return (UID, modseq) of the folder's messages matching key, UIDs up to max_uid.

    Sequence-number keys must already be UID sets (the session knows the numbering);
    "*" in a UID set stands for max_uid.
    """
    now = now or timezone.now()
    statements = _sql()
    m = statements.m
    translate = _Translator(max_uid, now, m)
    key = simplify(key)
    keys = list(key.keys) if isinstance(key, AndKey) else [key]
    where, params, residual = [f"{m.folder_id} = %s", f"{m.uid} <= %s"], [folder_id, max_uid], []
    for k in keys:
        condition = translate.sql(k)
        if condition is not None and _nesting(condition[0]) > MAX_SQL_NESTING:
            condition = None
        if condition is None:
            residual.append(k)
            # Checked in Python, but SQL may still narrow the rows it is checked on.
            condition = translate.superset(k)
            if condition is None or _nesting(condition[0]) > MAX_SQL_NESTING:
                continue
        where.append(condition[0])
        params += condition[1]
    condition = " AND ".join(where)
    with connection.cursor() as cursor:
        if not residual:
            cursor.execute(statements.uids.format(where=condition), params)
            return [tuple(row) for row in cursor.fetchall()]
        cursor.execute(statements.rows.format(where=condition), params)
        check = _Matcher(max_uid, now)
        found = []
        while batch := cursor.fetchmany(500):
            for row in MessageRow.decoded(_ROW_FIELDS, batch):
                message = _Text(row)
                if all(check.matches(k, row, message) for k in residual):
                    found.append((row.uid, row.modseq))
    return found


def simplify(key: SearchKey) -> SearchKey | AnyKey:
    """Return an equivalent key tree with NOT NOT removed and OR and AND lists flattened."""
    if isinstance(key, NotKey):
        negated = False
        while isinstance(key, NotKey):  # a loop, not recursion: the chain may be long
            key, negated = key.key, not negated
        inner = simplify(key)
        return NotKey(inner) if negated else inner
    if isinstance(key, OrKey | AndKey):
        kind = type(key)
        operands, pending = [], [key]
        while pending:
            k = pending.pop()
            if isinstance(k, kind):
                pending.extend(reversed((k.left, k.right) if isinstance(k, OrKey) else k.keys))
            else:
                operands.append(simplify(k))
        # NOT NOT (OR ...) inside an OR only now shows up as an OR: flatten it too.
        flat_kind = AnyKey if kind is OrKey else AndKey
        keys: list = []
        for k in operands:
            keys.extend(k.keys if isinstance(k, flat_kind) else (k,))
        return keys[0] if len(keys) == 1 else flat_kind(tuple(keys))
    return key


def _nesting(text: str) -> int:
    """Return how deep parentheses nest in an SQL condition (its parameters are apart)."""
    depth = deepest = 0
    for char in text:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    return deepest


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


class _UidSet:
    """A resolved UID set, tested with bisect."""

    def __init__(self, key: SetKey, max_uid: int) -> None:
        self.ranges = key.set.resolve(max_uid)
        self.lows = [low for low, _ in self.ranges]

    def __contains__(self, uid: int) -> bool:
        i = bisect.bisect_right(self.lows, uid) - 1
        return i >= 0 and uid <= self.ranges[i][1]


class _Translator:
    """Turn keys into SQL conditions; None for a key that needs the message text.

    Case-insensitive matching is the ORM's icontains, spelt as each backend spells it.
    """

    def __init__(self, max_uid: int, now: datetime, m: sql.Names) -> None:
        self.max_uid = max_uid
        self.now = now
        self.m = m  # the message table's columns

    def sql(self, key: SearchKey | AnyKey) -> Condition | None:
        if isinstance(key, AllKey):
            return _EVERYTHING
        if isinstance(key, FlagKey):
            return self._flag(key)
        m = self.m
        if isinstance(key, HeaderKey):
            name = _CACHED_HEADERS.get(key.field)
            if name is None or not key.value or key.field in _ADDRESS_HEADERS:
                # Presence, a field not cached, or addresses, where comments may split
                # what is searched for ("a (c)@ (c) b.org" is a@b.org): checked in Python.
                return None
            return sql.icontains(getattr(m, name), key.value)
        if isinstance(key, TextKey):
            return None
        if isinstance(key, DateKey):
            internal = self._internal_date(key)
            if key.field == "INTERNAL":
                return internal
            # The Date: header's own day (RFC 3501 6.4.4); without one, the internal date.
            # CASE, not OR: a NULL must not reach a NOT around this.
            on = {"BEFORE": "< %s", "SINCE": ">= %s", "ON": "= %s"}[key.op]
            return (f"CASE WHEN {m.sent_on} IS NULL THEN {internal[0]} "
                    f"ELSE {m.sent_on} {on} END",
                    [*internal[1], sql.prep(Message, "sent_on", key.value)])
        if isinstance(key, SizeKey):
            return (f"{m.size} > %s" if key.op == "LARGER" else f"{m.size} < %s"), [key.value]
        if isinstance(key, AgeKey):
            edge = self.now - timedelta(seconds=key.seconds)
            return (f"{m.internal_date} {'<=' if key.op == 'OLDER' else '>='} %s",
                    [_date(edge)])
        if isinstance(key, SetKey):
            if key.set.saved or not key.uid:
                raise ValueError("resolve sequence numbers and $ to UIDs first")
            ranges = key.set.resolve(self.max_uid)
            if len(ranges) > MAX_UID_RANGES:
                return None
            if not ranges:
                return _NOTHING
            text, params = sql.ranges_condition(m.uid, ranges)
            return text, params
        if isinstance(key, ModSeqKey):
            return f"{m.modseq} >= %s", [key.modseq]
        if isinstance(key, NotKey):
            inner = self.sql(key.key)
            # No column compared here holds NULL: NOT is plain negation.
            return None if inner is None else (f"NOT ({inner[0]})", inner[1])
        if isinstance(key, OrKey):
            return self.sql(AnyKey((key.left, key.right)))
        if isinstance(key, AnyKey | AndKey):
            parts = [self.sql(k) for k in key.keys]
            if any(p is None for p in parts):
                return None
            if not parts:
                return _EVERYTHING
            joint = " OR " if isinstance(key, AnyKey) else " AND "
            return ("(" + joint.join(f"({text})" for text, _ in parts) + ")",
                    [param for _, params in parts for param in params])
        raise TypeError(f"unknown search key {key!r}")

    def superset(self, key: SearchKey | AnyKey) -> Condition | None:
        """Return a condition that every message matching key meets (others may too).

        For a key checked in Python: the rows it must look at. None: all of them.
        """
        exact = self.sql(key)
        if exact is not None:
            return exact
        if isinstance(key, HeaderKey) and key.value and key.field in _ADDRESS_HEADERS \
                and key.field in _CACHED_HEADERS:
            # The text as cached, or an address with a comment that may split it.
            column = getattr(self.m, _CACHED_HEADERS[key.field])
            text, params = sql.icontains(column, key.value)
            comment, more = sql.icontains(column, "(")
            return f"({text} OR {comment})", params + more
        if isinstance(key, OrKey):
            key = AnyKey((key.left, key.right))
        if isinstance(key, AnyKey | AndKey):
            parts = [self.superset(k) for k in key.keys]
            if isinstance(key, AndKey):
                parts = [p for p in parts if p is not None]  # None: no narrowing
            elif any(p is None for p in parts):
                return None
            if not parts:
                return None
            joint = " OR " if isinstance(key, AnyKey) else " AND "
            return ("(" + joint.join(f"({text})" for text, _ in parts) + ")",
                    [param for _, params in parts for param in params])
        return None

    def _internal_date(self, key: DateKey) -> Condition:
        column = self.m.internal_date
        start = _day_start(key.value)
        if key.op == "BEFORE":
            return f"{column} < %s", [_date(start)]
        if key.op == "SINCE":
            return f"{column} >= %s", [_date(start)]
        return (f"{column} >= %s AND {column} < %s",
                [_date(start), _date(start + timedelta(days=1))])

    def _flag(self, key: FlagKey) -> Condition:
        name = SYSTEM_FLAGS.get(_system_flag(key.flag))
        if name is not None:
            column = getattr(self.m, name)
            return (column if key.present else f"NOT {column}"), []
        if key.flag.lower() == "\\recent":
            return _NOTHING if key.present else _EVERYTHING  # nothing is ever \Recent here
        if key.flag.startswith("\\"):
            return _EVERYTHING if not key.present else _NOTHING
        # Keywords are atoms (no quotes or backslashes): their JSON form is "name".
        text, params = sql.icontains(self.m.keywords, json.dumps(key.flag))
        return (text, params) if key.present else (f"NOT ({text})", params)


def _date(moment: datetime):
    return sql.prep(Message, "internal_date", moment)


def _system_flag(flag: str) -> str:
    return next((name for name in SYSTEM_FLAGS if name.lower() == flag.lower()), flag)


class _Text:
    """A message's text, read from the blob on first use."""

    def __init__(self, row: MessageRow) -> None:
        self.row = row
        self._raw: bytes | None = None
        self._header = None
        self._body: str | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = blob_store().get(self.row.blob_id)
        return self._raw

    def header_values(self, field: str) -> list[str] | None:
        """Return the decoded values of a header field, or None when it is absent."""
        if self._header is None:
            self._header = BytesHeaderParser(policy=compat32).parsebytes(
                split_header_block(self.raw))
        values = self._header.get_all(field)
        if values is None:
            return None
        return [" ".join(decode_text(str(v)).split()) for v in values]

    def header_text(self) -> str:
        block = split_header_block(self.raw).decode("utf-8", "replace")
        return decode_text(" ".join(block.split()))

    def body(self) -> str:
        """Return the body's text parts decoded (transfer encoding and charset)."""
        if self._body is None:
            self._body = _body_text(self.raw)
        return self._body


def _address_forms(value: str) -> str:
    """Return the addresses of a header value as "name <local@domain>", comments dropped."""
    forms = []
    for address in parse_addresses(value.encode("utf-8", "surrogateescape")):
        if address.host is not None:
            name = decode_text(address.name) if address.name else ""
            forms.append(f"{name} <{address.mailbox}@{address.host}>")
    return ", ".join(forms)


def _contains(haystack: str, needle: str) -> bool:
    return needle.casefold() in haystack.casefold()


class _Matcher:
    """Evaluate any key on one row (and its text, when the key needs it)."""

    def __init__(self, max_uid: int, now: datetime) -> None:
        self.max_uid = max_uid
        self.now = now
        self.sets: dict[int, _UidSet] = {}

    def matches(self, key: SearchKey | AnyKey, row: MessageRow, text: _Text) -> bool:
        method: Callable[[SearchKey, MessageRow, _Text], bool] = getattr(
            self, f"_{type(key).__name__}")
        return method(key, row, text)

    def _AllKey(self, key, row, text) -> bool:
        return True

    def _FlagKey(self, key: FlagKey, row: MessageRow, text: _Text) -> bool:
        column = SYSTEM_FLAGS.get(_system_flag(key.flag))
        if column is not None:
            has = getattr(row, column)
        elif key.flag.startswith("\\"):
            has = False
        else:
            has = key.flag.lower() in {k.lower() for k in row.keywords or ()}
        return has == key.present

    def _HeaderKey(self, key: HeaderKey, row: MessageRow, text: _Text) -> bool:
        column = _CACHED_HEADERS.get(key.field)
        if key.value and column is not None:
            values = [getattr(row, column)]  # decoded at delivery, as header_values()
        else:
            values = text.header_values(key.field)
        if values is None:
            return False
        if not key.value:
            return True
        if any(_contains(v, key.value) for v in values):
            return True
        # Addresses also match as "name <local@domain>", their comments dropped.
        return key.field in _ADDRESS_HEADERS and any(
            _contains(_address_forms(v), key.value) for v in values if "(" in v)

    def _TextKey(self, key: TextKey, row: MessageRow, text: _Text) -> bool:
        if key.part == "TEXT" and _contains(text.header_text(), key.value):
            return True
        return _contains(text.body(), key.value)

    def _DateKey(self, key: DateKey, row: MessageRow, text: _Text) -> bool:
        day = row.internal_date.astimezone(UTC).date()
        if key.field == "SENT" and row.sent_on is not None:
            day = row.sent_on
        if key.op == "BEFORE":
            return day < key.value
        if key.op == "SINCE":
            return day >= key.value
        return day == key.value

    def _SizeKey(self, key: SizeKey, row: MessageRow, text: _Text) -> bool:
        return row.size > key.value if key.op == "LARGER" else row.size < key.value

    def _AgeKey(self, key: AgeKey, row: MessageRow, text: _Text) -> bool:
        edge = self.now - timedelta(seconds=key.seconds)
        return row.internal_date <= edge if key.op == "OLDER" else row.internal_date >= edge

    def _SetKey(self, key: SetKey, row: MessageRow, text: _Text) -> bool:
        uid_set = self.sets.get(id(key))
        if uid_set is None:
            uid_set = self.sets[id(key)] = _UidSet(key, self.max_uid)
        return row.uid in uid_set

    def _ModSeqKey(self, key: ModSeqKey, row: MessageRow, text: _Text) -> bool:
        return row.modseq >= key.modseq

    def _NotKey(self, key: NotKey, row: MessageRow, text: _Text) -> bool:
        return not self.matches(key.key, row, text)

    def _OrKey(self, key: OrKey, row: MessageRow, text: _Text) -> bool:
        return self.matches(key.left, row, text) or self.matches(key.right, row, text)

    def _AnyKey(self, key: AnyKey, row: MessageRow, text: _Text) -> bool:
        return any(self.matches(k, row, text) for k in key.keys)

    def _AndKey(self, key: AndKey, row: MessageRow, text: _Text) -> bool:
        return all(self.matches(k, row, text) for k in key.keys)


def uid_set_key(uids: Sequence[int]) -> SetKey:
    """Return a key matching exactly these UIDs."""
    return SetKey(SequenceSet.from_numbers(uids), uid=True)
