"""What messages are sorted and threaded by: base subjects, address keys, references.

RFC 5256 (SORT and THREAD) and RFC 5957 (SORT=DISPLAY) define the keys; the store caches
them per message at delivery (sort_fields()), so a sort reads columns, never blobs.
Strings are compared after casemap(), the i;unicode-casemap collation (RFC 5051) that
RFC 5256 section 3 asks for through I18NLEVEL=1: then plain code-point order is right.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from email.errors import HeaderParseError
from email.header import decode_header, make_header

from mailcore.message.address import Address, parse_addresses
from mailcore.message.header import Field, field_name, read_header, text

# RFC 5256 section 5: subj-blob, subj-refwd, subj-leader, subj-trailer, subj-fwd-hdr.
_BLOB = r"\[[^\[\]]*\][ \t]*"
_REFWD = re.compile(rf"(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:", re.I)
_BLOB_ONLY = re.compile(_BLOB)
_TRAILER = re.compile(r"(?:\(fwd\)|[ \t])$", re.I)
_MSG_ID = re.compile(r"<([^<>\s]+)>")
# Sort keys are indexed for the webmail's sorted pages; a B-tree entry has a size limit
# (about 2,700 bytes in PostgreSQL), and the first 200 characters decide any real order.
MAX_KEY = 200
SORT_FIELDS = ("sort_subject", "sort_from", "sort_to", "sort_cc", "sort_display_from",
               "sort_display_to", "thread_refs")


def casemap(value: str) -> str:
    """Return value under i;unicode-casemap (RFC 5051 section 2): titlecase, then NFKD."""
    if value.isascii():
        return value.upper()[:MAX_KEY]
    return unicodedata.normalize("NFKD", "".join(map(_titlecase, value)))[:MAX_KEY]


@functools.cache
def _titlecase(char: str) -> str:
    """Return a character's simple titlecase mapping (one character: "ß" stays "ß")."""
    title = char.title()
    return title if len(title) == 1 else char


def base_subject(subject: str) -> tuple[str, bool]:
    """Return a subject's base subject (RFC 5256 section 2.1) and whether it was a reply.

    "A reply or forward" (section 2.1, used by THREAD=REFERENCES step 5): a "Re:",
    "Fw:" or "Fwd:" leader, a "(fwd)" trailer or a "[fwd: ...]" wrapper was removed.
    subject must already be decoded with its white space collapsed (step 1): the
    cached subject column is.
    """
    text = " ".join(subject.split())
    reply = False
    while True:
        # (2) trailing "(fwd)" and white space.
        while (match := _TRAILER.search(text)) is not None:
            reply = reply or match.group(0).lower() == "(fwd)"
            text = text[:match.start()]
        # (3)-(5) leaders ("Re:", "[list] Fwd:", white space) and leading blobs.
        while True:
            if text[:1] in (" ", "\t"):
                text = text[1:]
                continue
            match = _REFWD.match(text)
            if match is not None:
                text, reply = text[match.end():], True
                continue
            match = _BLOB_ONLY.match(text)
            if match is not None and text[match.end():].strip():
                text = text[match.end():]
                continue
            break
        # (6) "[fwd: ...]" around the whole subject.
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text, reply = text[5:-1], True
            continue
        return text, reply


def address_keys(addresses: Sequence[Address] | None) -> tuple[str, str]:
    """Return the SORT key (addr-mailbox) and the SORT=DISPLAY key of the first address.

    RFC 5256 section 3: FROM, TO and CC sort on the first address's addr-mailbox.
    RFC 5957 section 3: DISPLAYFROM and DISPLAYTO sort on its display name (RFC 2047
    decoded), or on mailbox@host when it has none. Group markers are skipped.
    """
    for address in addresses or ():
        name, _adl, mailbox, host = address
        if host is None:
            continue  # a group's start or end marker (RFC 3501 section 7.4.2)
        display = " ".join(_decoded(name).split()) if name else ""
        if not display:
            display = f"{mailbox or ''}@{host}" if mailbox or host else ""
        return casemap(mailbox or ""), casemap(display)
    return "", ""


def _decoded(value: str) -> str:
    """Return a display name with its RFC 2047 words decoded (as written when broken)."""
    try:
        return str(make_header(decode_header(value)))
    except (UnicodeError, LookupError, ValueError, HeaderParseError):
        return value


def message_ids(value: str | None) -> list[str]:
    """Return the msg-ids (without angle brackets) in a header value, in order."""
    return _MSG_ID.findall(value or "")


def own_message_id(value: str | None) -> str | None:
    """Return a message's own Message-ID (the first valid msg-id), or None."""
    found = message_ids(value)
    return found[0] if found else None


THREAD_ROOT_LENGTH = 255


def thread_root(message_id: str | None, thread_refs: str | None) -> str:
    """Return the msg-id a message's conversation is looked up by, as "<id>" ("" if none).

    The first parent it names (its thread's root, when the References are whole), else its
    own Message-ID; cut to THREAD_ROOT_LENGTH characters to stay indexable.
    """
    refs = message_ids(thread_refs)
    root = refs[0] if refs else own_message_id(message_id)
    return f"<{root}>"[:THREAD_ROOT_LENGTH] if root else ""


def thread_references(references: str | None, in_reply_to: str | None) -> list[str]:
    """Return the parents a message names, oldest first (RFC 5256 section 2.2).

    The References header's msg-ids; when it has none, the first msg-id of In-Reply-To.
    """
    found = message_ids(references)
    if not found:
        found = message_ids(in_reply_to)[:1]
    return found


def sort_fields(subject: str, from_: Sequence[Address] | None, to: Sequence[Address] | None,
                cc: Sequence[Address] | None, references: str | None,
                in_reply_to: str | None) -> dict[str, str]:
    """Return the sort and thread columns the store keeps per message."""
    sort_from, display_from = address_keys(from_)
    sort_to, display_to = address_keys(to)
    return {
        "sort_subject": casemap(base_subject(subject)[0]),
        "sort_from": sort_from,
        "sort_to": sort_to,
        "sort_cc": address_keys(cc)[0],
        "sort_display_from": display_from,
        "sort_display_to": display_to,
        "thread_refs": " ".join(f"<{ref}>" for ref in thread_references(
            references, in_reply_to))[:10000],
    }


def header_sort_fields(header_block: bytes, subject: str) -> dict[str, str]:
    """Return sort_fields() of a raw header block; subject: the decoded Subject."""
    return fields_sort_fields(read_header(header_block).fields, subject)


def fields_sort_fields(fields: Sequence[Field], subject: str,
                       parse: Callable[[bytes], list[Address]] = parse_addresses
                       ) -> dict[str, str]:
    """header_sort_fields() of a header already read; parse: parse_addresses, or one that
    remembers what it parsed for the ENVELOPE (delivery reads each header once)."""
    values: dict[str, bytes] = {}
    for field in fields:
        name = field_name(field)
        if name in ("from", "to", "cc", "references", "in-reply-to") and name not in values:
            values[name] = field.value or b""
    return sort_fields(
        subject,
        *(parse(values[name]) if name in values else None for name in ("from", "to", "cc")),
        text(values.get("references")), text(values.get("in-reply-to")))
