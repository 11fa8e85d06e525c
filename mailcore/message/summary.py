"""Header fields decoded for people, read tolerantly from any bytes a sender may send.

The header block, RFC 2047 words decoded, and the summary the store caches per message
for listing and SEARCH. (mailcore.message.header reads headers byte for byte instead.)
"""

from __future__ import annotations

import email.errors
import email.utils
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.header import Header, decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailcore.message.address import Address, parse_addresses
from mailcore.message.header import Field, read_header
from mailcore.message.sortkeys import fields_sort_fields, thread_root

_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes the parser could not read as ASCII


def split_header_block(raw: bytes) -> bytes:
    """Return the header block of a raw message (up to the first empty line)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end != -1:
            return raw[: end + len(sep)]
    return raw


def decode_text(value: str | Header | None) -> str:
    """Decode RFC 2047 encoded words; fall back to the raw text for broken encodings.

    Raw 8-bit text (RFC 6532 UTF-8 headers, as UTF8=ACCEPT clients append them) comes
    from the compat32 parser as surrogate escapes: it is read as UTF-8.
    """
    if not value:
        return ""
    if not isinstance(value, str):  # a Header: the parser met 8-bit bytes ("unknown-8bit")
        value = "".join(chunk.decode("utf-8", "replace") if isinstance(chunk, bytes)
                        else chunk for chunk, _ in decode_header(value))
    elif _ESCAPED.search(value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(value)))
    except (UnicodeError, LookupError, ValueError, email.errors.HeaderParseError):
        return value


def summarize(raw: bytes, fields: Sequence[Field] | None = None,
              parse: Callable[[bytes], list[Address]] = parse_addresses) -> dict:
    """Return the header fields the store keeps per message (for listing and SEARCH).

    fields: the header block's fields (read_header), when the caller has read them already;
    parse: as for fields_sort_fields().
    """
    block = split_header_block(raw)
    headers = BytesHeaderParser(policy=compat32).parsebytes(block)

    def text(name: str) -> str:
        return " ".join(decode_text(headers.get(name, "")).split())

    sent_date = None
    if headers.get("Date"):
        try:
            sent_date = email.utils.parsedate_to_datetime(str(headers["Date"]))
            if sent_date.tzinfo is None:
                sent_date = sent_date.replace(tzinfo=UTC)
        except (TypeError, ValueError, IndexError, OverflowError):
            sent_date = None
    if sent_date is not None and not (datetime(1900, 1, 1, tzinfo=UTC) < sent_date
                                      < datetime(9999, 1, 1, tzinfo=UTC)):
        sent_date = None
    subject = text("Subject")
    message_id = text("Message-ID")[:998]
    sort = fields_sort_fields(read_header(block).fields if fields is None else fields,
                              subject, parse)
    return {
        # SEARCH SENT* compare the date as written, its time and zone disregarded (RFC 3501
        # section 6.4.4): the calendar date in the header, not the UTC instant's.
        "sent_on": sent_date and sent_date.date(),
        "subject": subject,
        "from_addr": text("From"),
        "to_addrs": text("To"),
        "cc_addrs": text("Cc"),
        "message_id": message_id,
        "sent_date": sent_date,
        **sort,
        "thread_root": thread_root(message_id, sort["thread_refs"]),
    }
