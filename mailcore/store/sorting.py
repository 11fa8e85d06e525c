"""Sorting a folder's messages (RFC 5256 SORT, RFC 5957 SORT=DISPLAY) on the cached keys.

IMAP SORT searches (mailcore.store.search), then orders the matches in Python on the
sort columns cached at delivery (mailcore.message.sortkeys): every key is casemapped
text, a number or a date, so plain comparison is the RFC's collation, on any database.
The webmail's pages sort in SQL instead, on the indexed columns of PAGE_ORDERS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection

from mailcore.message.searchkeys import SearchKey
from mailcore.models import Message
from mailcore.store import search, sql

# Sort criterion: the columns that hold its key (RFC 5256 section 3, RFC 5957 section 3).
CRITERIA: dict[str, tuple[str, ...]] = {
    "ARRIVAL": ("internal_date",),
    "CC": ("sort_cc",),
    "DATE": ("sent_date", "internal_date"),  # the internal date when there is no Date:
    "FROM": ("sort_from",),
    "SIZE": ("size",),
    "SUBJECT": ("sort_subject",),
    "TO": ("sort_to",),
    "DISPLAYFROM": ("sort_display_from",),
    "DISPLAYTO": ("sort_display_to",),
}

# The webmail's sort names: its ORDER BY, each on an index (folder, column, uid).
PAGE_ORDERS: dict[str, str] = {
    "date": "internal_date",
    "from": "sort_display_from",
    "to": "sort_display_to",
    "subject": "sort_subject",
    "size": "size",
}


@dataclass(frozen=True)
class Criterion:
    """One sort criterion: a key of CRITERIA, and whether it is REVERSEd."""

    key: str
    reverse: bool = False


def sort(folder_id: int, criteria: Sequence[Criterion], key: SearchKey, max_uid: int
         ) -> list[tuple[int, int]]:
    """Return (UID, modseq) of the messages matching key, in the order criteria say.

    Messages equal on every criterion keep UID order, which is mailbox order (RFC 5256
    section 3). Sequence-number keys must already be UID sets, as for search.search.
    """
    matched = dict(search.search(folder_id, key, max_uid))
    if not matched:
        return []
    names = [name for c in criteria for name in CRITERIA[c.key]]
    rows = _keys(folder_id, max_uid, tuple(dict.fromkeys(names)))
    rows = [row for row in rows if row[0] in matched]
    columns = ["uid", *dict.fromkeys(names)]
    # One stable sort per criterion, the least significant first.
    for criterion in reversed(criteria):
        found = [columns.index(name) for name in CRITERIA[criterion.key]]
        if criterion.key == "DATE":
            sent, internal = found
            rows.sort(key=lambda r: r[sent] or r[internal], reverse=criterion.reverse)
        else:
            rows.sort(key=lambda r: r[found[0]], reverse=criterion.reverse)
    return [(row[0], matched[row[0]]) for row in rows]


def _keys(folder_id: int, max_uid: int, names: tuple[str, ...]) -> list[list]:
    """Return [uid, *names] of the folder's messages up to max_uid, in UID order."""
    fields = ("uid", *names)
    statement = _statement(fields)
    with connection.cursor() as cursor:
        cursor.execute(statement, [folder_id, max_uid])
        return sql.decode(Message, fields, cursor.fetchall())


@sql.statements
def _statement(fields: tuple[str, ...]) -> str:
    m = sql.Names(Message)
    return sql.select(Message, fields, f"{m.folder_id} = %s AND {m.uid} <= %s "
                      f"ORDER BY {m.uid}")


def page_ordering(sort: str, descending: bool) -> list[str]:
    """Return the ORM ordering of a webmail page sorted by one of PAGE_ORDERS' names."""
    column = PAGE_ORDERS.get(sort, PAGE_ORDERS["date"])
    sign = "-" if descending else ""
    return [sign + column, sign + "uid"]
