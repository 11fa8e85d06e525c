"""ENVELOPE data (RFC 3501 section 7.4.2): a message's header fields as one JSON-able list.

It is computed once at delivery and stored per message; IMAP renders it
(mailcore.imap.bodystructure.envelope_sexp). As in Dovecot, values are the raw header
text (RFC 2047 words left encoded), the last Subject/Date/Message-ID/In-Reply-To wins,
and address headers that repeat are concatenated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mailcore.message.address import Address, parse_addresses
from mailcore.message.header import Field, field_name, read_header, text

ENVELOPE_FIELDS = (
    "date", "subject", "from", "sender", "reply-to",
    "to", "cc", "bcc", "in-reply-to", "message-id",
)
_ADDRESS_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})


def read_envelope(raw_headers: bytes) -> list:
    """Return the ENVELOPE of a message (or of just its header block) as a JSON-able list."""
    return build_envelope(read_header(raw_headers).fields)


def build_envelope(fields: Sequence[Field],
                   parse: Callable[[bytes], list[Address]] = parse_addresses) -> list:
    """Return the ENVELOPE (RFC 3501 section 7.4.2) of a header as a JSON-able list.

    [date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id]: strings
    are the raw field values (RFC 2047 words left encoded), address lists are lists of
    Address values or None. Sender and Reply-To default to From. parse: parse_addresses,
    or one that remembers what it parsed (delivery parses each header once).
    """
    values: dict[str, bytes | None] = {}
    addresses: dict[str, list[Address]] = {}
    for field in fields:
        name = field_name(field)
        if name not in ENVELOPE_FIELDS:
            continue
        value = field.value if field.value is not None else b""
        if name in _ADDRESS_FIELDS:
            addresses.setdefault(name, []).extend(parse(value))
        else:
            values[name] = value
    env: list = []
    for name in ENVELOPE_FIELDS:
        if name in _ADDRESS_FIELDS:
            found = addresses.get(name) or None
            if found is None and name in ("sender", "reply-to"):
                found = addresses.get("from") or None
            env.append(found)
        else:
            env.append(text(values.get(name)))
    return env
