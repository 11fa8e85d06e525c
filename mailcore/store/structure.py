"""ENVELOPE, BODYSTRUCTURE and the header block kept per message: computed at delivery,
backfilled for old rows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from django.db import connection

from mailcore import dbpool
from mailcore.message import mime
from mailcore.message.address import Address, parse_addresses
from mailcore.message.envelope import build_envelope
from mailcore.message.header import Field, read_header
from mailcore.message.summary import split_header_block, summarize
from mailcore.models import Message
from mailcore.store import sql

log = logging.getLogger("mailcore.store")

# A header block longer than this is not kept (b""): FETCH reads it from the blob. Real
# headers run to a few KB; a "header" of megabytes (a message without a blank line) would
# weigh on every row read.
HEADER_KEEP_LIMIT = 64 * 1024


def header_block(raw: bytes) -> bytes:
    """Return what Message.header keeps of raw: its header block, or b"" if too long."""
    end = mime.header_end(raw)
    return raw[:end] if end <= HEADER_KEEP_LIMIT else b""


def describe(raw: bytes) -> dict:
    """Return every field a Message keeps about raw: summarize()'s and compute()'s.

    The header block is read, and its From, To and Cc parsed, once for both.
    """
    fields = read_header(split_header_block(raw)).fields
    parsed: dict[bytes, list[Address]] = {}

    def parse(value: bytes) -> list[Address]:
        found = parsed.get(value)
        if found is None:
            found = parsed[value] = parse_addresses(value)
        return found

    return {**summarize(raw, fields, parse), **compute(raw, fields, parse)}


def compute(raw: bytes, fields: Sequence[Field] | None = None,
            parse: Callable[[bytes], list[Address]] = parse_addresses) -> dict:
    """Return the envelope, bodystructure and header fields of a Message for raw.

    fields, parse: the header block's fields already read, and the address parser to use
    (describe()). The parser never raises by design; should it all the same, the fields
    stay null and are computed again on first FETCH rather than refusing the message.
    """
    try:
        if fields is None:
            fields = read_header(split_header_block(raw)).fields
        return {"envelope": build_envelope(fields, parse),
                "bodystructure": mime.parse_structure(raw), "header": header_block(raw)}
    except Exception:
        log.warning("could not compute the MIME structure of a message", exc_info=True)
        return {"envelope": None, "bodystructure": None, "header": None}


def backfill(message: Message, raw: bytes) -> None:
    """Compute a row's missing envelope/bodystructure from its blob and save them."""
    fields = compute(raw)
    del fields["header"]  # left to fill_headers()
    if fields["envelope"] is None or fields["bodystructure"] is None:
        raise ValueError(f"no MIME structure for message {message.pk}")
    message.envelope, message.bodystructure = fields["envelope"], fields["bodystructure"]
    # Every row sharing the blob gets them too (one delivery to N mailboxes, copies).
    Message.objects.filter(blob_id=message.blob_id, bodystructure__isnull=True).update(**fields)


def fill_headers(rows: Iterable, read: Callable[[str], bytes]) -> None:
    """Give rows (with blob_id and header) stored before headers were kept their header.

    read(blob_id) returns a blob. Every row sharing a blob gets it saved too (one
    delivery to N mailboxes, copies), so this runs once per message.
    """
    filled: dict[str, bytes] = {}
    for row in rows:
        if row.header is None:
            if row.blob_id not in filled:
                filled[row.blob_id] = header_block(read(row.blob_id))
            row.header = filled[row.blob_id]
    if not filled:
        return
    # A cache: one transaction for them all, which a power cut may lose (then filled again).
    with dbpool.writing(durable=False), connection.cursor() as cursor:
        cursor.executemany(_fill_sql(), [(block, key) for key, block in filled.items()])


@sql.statements
def _fill_sql() -> str:
    return sql.render("UPDATE {message} SET {message.header} = %s "
                      "WHERE {message.blob_id} = %s AND {message.header} IS NULL",
                      message=Message)
