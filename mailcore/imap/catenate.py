"""CATENATE (RFC 4469): APPEND of a message put together from text and IMAP URLs.

The grammar of the cat-parts, the IMAP URLs they may name (RFC 5092, the subset
CATENATE needs: a message or a section of one in the user's own mailboxes, with
PARTIAL; no URLAUTH), and putting the message together from the store's parts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from django.conf import settings

from mailcore import dbpool
from mailcore.imap import replies, utf7
from mailcore.imap.context import Session
from mailcore.imap.lexer import Reader
from mailcore.sessions import BadSyntax, Refused
from mailcore.store.parts import MessagePart, read_part

# RFC 5092 section 6: [imap://user[;AUTH=x]@host[:port]]/mailbox[;UIDVALIDITY=n]
# /;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]; or relative to the selected mailbox, from ";UID=".
_ABSOLUTE = re.compile(r"imap://(?P<user>[^@/;]*)(?:;AUTH=[^@/]*)?@[^/]+(?P<path>/.*)",
                       re.I | re.S)
_PATH = re.compile(r"/(?P<mailbox>[^;]+)(?:;UIDVALIDITY=(?P<uidvalidity>[1-9][0-9]{0,9}))?"
                   r"(?P<rest>/;UID=.*)", re.I | re.S)
_REST = re.compile(r"/?;UID=(?P<uid>[1-9][0-9]{0,9})(?:/;SECTION=(?P<section>[^/;]*))?"
                   r"(?:/;PARTIAL=(?P<offset>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?",
                   re.I | re.S)


@dataclass(frozen=True)
class TextPart:
    """TEXT literal: octets taken as they are."""

    data: bytes


@dataclass(frozen=True)
class UrlPart:
    """URL astring: a message or part to copy in."""

    url: str


CatPart = TextPart | UrlPart


def parse_parts(reader: Reader) -> tuple[CatPart, ...]:
    """Read "(" cat-part *(SP cat-part) ")" after "CATENATE SP" (RFC 4469 section 5)."""
    def part() -> CatPart:
        kind = reader.keyword()
        reader.space()
        if kind == "TEXT":
            data, _ = reader.literal()
            if b"\0" in data:
                raise BadSyntax("NUL in a TEXT literal")  # a literal, not literal8
            return TextPart(data)
        if kind == "URL":
            return UrlPart(reader.astring())
        raise BadSyntax("expected TEXT or URL")

    return tuple(reader.paren_list(part, empty=False))


class BadUrl(Refused):
    """A URL CATENATE cannot use: NO [BADURL url] (RFC 4469 section 6)."""

    def __init__(self, url: str) -> None:
        # The URL goes back as it came: an astring, safe in a response code if quoted.
        quoted = '"' + url.replace("\\", "\\\\").replace('"', '\\"') + '"'
        super().__init__(f"[BADURL {quoted}] Cannot use this URL")


def parse_url(url: str, user: str, selected: tuple[str, int] | None) -> MessagePart:
    """Return the message part a CATENATE URL names, or raise BadUrl.

    Absolute URLs must name the session's own user; relative ones (";UID=...") need a
    selected mailbox (name, UIDVALIDITY), their base (RFC 4469 section 5). URLAUTH is
    not offered.
    """
    path = url
    absolute = _ABSOLUTE.fullmatch(url)
    if absolute is not None:
        if unquote_to_bytes(absolute["user"]).decode("utf-8", "replace").lower() \
                != user.lower():
            raise BadUrl(url)
        path = absolute["path"]
    found = _PATH.fullmatch(path)
    if found is not None:
        mailbox, uidvalidity, rest = _mailbox(found["mailbox"], url), found["uidvalidity"], \
            found["rest"]
    elif path.upper().startswith(";UID=") and selected is not None:
        (mailbox, uidvalidity), rest = selected, path
    else:
        raise BadUrl(url)
    parts = _REST.fullmatch(rest)
    if parts is None:
        raise BadUrl(url)
    section = parts["section"]
    if section is not None:
        section = unquote_to_bytes(section).decode("utf-8", "replace")
    return MessagePart(
        mailbox, int(uidvalidity) if uidvalidity else None, int(parts["uid"]), section,
        int(parts["offset"]) if parts["offset"] is not None else None,
        int(parts["length"]) if parts["length"] is not None else None)


def _mailbox(encoded: str, url: str) -> str:
    """Return a URL's mailbox name: %-escaped modified UTF-7 (RFC 5092 section 3.2)."""
    raw = unquote_to_bytes(encoded)
    try:
        return utf7.decode(raw)
    except (utf7.InvalidName, UnicodeError):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadUrl(url) from None


async def assemble(session: Session, parts: Sequence[CatPart]) -> bytes:
    """Return the message the cat-parts make; raise BadUrl, or Refused when too big."""
    view = session.selected
    base = (view.name, view.uidvalidity) if view is not None else None
    wanted = [parse_url(p.url, session.user, base) if isinstance(p, UrlPart) else p
              for p in parts]
    limit = settings.MESSAGE_SIZE_LIMIT
    found = await dbpool.run(_read, session.mailbox_id, wanted, limit)
    if found is None:
        raise Refused(replies.MESSAGE_TOO_BIG.format(limit=limit))
    for part, data in zip(parts, found, strict=True):
        if data is None:
            raise BadUrl(part.url)
    return b"".join(found)


def _read(mailbox_id: int, wanted: Sequence[MessagePart | TextPart], limit: int
          ) -> list[bytes | None] | None:
    """Return each part's octets (None: not found); None when together they exceed limit."""
    found: list[bytes | None] = []
    size = 0
    for item in wanted:
        data = item.data if isinstance(item, TextPart) else read_part(mailbox_id, item)
        size += len(data or b"")
        if size > limit:
            return None
        found.append(data)
    return found
