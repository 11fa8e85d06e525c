"""Reading one message: its headers, its body as text or as sanitised HTML, its attachments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from mailcore.message.summary import decode_text, split_header_block
from mailcore.models import Folder, Message
from mailcore.store import messages as store_messages
from mailcore.webclient import parts, sanitize
from mailcore.webclient.folder_list import get_folder


class NoSuchMessage(Exception):
    """No message with this UID in this mailbox's folder."""


@dataclass
class Opened:
    """A message as the reader sees it."""

    folder: Folder
    message: Message
    raw: bytes
    structure: dict
    headers: dict[str, str]  # decoded: from, to, cc, reply-to, subject, date, message-id...
    layout: parts.Layout

    @property
    def attachments(self) -> list[parts.Part]:
        return self.layout.attachments

    @property
    def date(self) -> datetime:
        return self.message.sent_date or self.message.internal_date

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """Return the (name, address) pairs a header lists."""
        return [(n, a) for n, a in getaddresses([self.headers.get(name, "")]) if a]

    def text(self) -> str:
        """Return the body as plain text (HTML reduced to its text where there is no plain)."""
        return body_text(self.raw, self.layout)

    def html(self, cid_url: Callable[[str], str | None], allow_remote: bool
             ) -> sanitize.CleanHtml:
        """Return the body as sanitised HTML (text parts escaped), for the message frame."""
        return body_html(self.raw, self.layout, cid_url, allow_remote)


def body_text(raw: bytes, layout: parts.Layout) -> str:
    """Return a message's body as plain text (HTML reduced to its text where no plain)."""
    chunks = []
    for part in layout.texts:
        value = parts.text(raw, part)
        chunks.append(sanitize.html_to_text(value) if part.content_type == "text/html"
                      else value)
    return "\n\n".join(c.strip("\n") for c in chunks)


def body_html(raw: bytes, layout: parts.Layout, cid_url: Callable[[str], str | None],
              allow_remote: bool) -> sanitize.CleanHtml:
    """Return a message's body as sanitised HTML (text parts escaped, links clickable)."""
    chunks, blocked = [], False
    for part in layout.texts:
        value = parts.text(raw, part)
        if part.content_type == "text/html":
            clean = sanitize.clean_html(value, cid_url=cid_url, allow_remote=allow_remote)
            chunks.append(clean.html)
            blocked = blocked or clean.blocked_remote
        else:
            chunks.append(f"<pre>{sanitize.text_to_html(value)}</pre>")
    return sanitize.CleanHtml("\n<hr>\n".join(chunks), blocked)


@dataclass(frozen=True)
class Rendered:
    """A message that lives in no mailbox (the development outbox), ready to show."""

    headers: dict[str, str]
    text_html: str  # the plain text, escaped, its web links clickable
    html_document: str  # the HTML part as a sanitised document for a sandboxed frame, or ""
    attachments: list[parts.Part]


def render(raw: bytes) -> Rendered:
    """Return a raw message's headers, text and sanitised HTML (remote content blocked)."""
    structure = parts.structure_of(raw, None)
    plain = parts.layout(structure, prefer_html=False)
    rich = parts.layout(structure, prefer_html=True)
    text_html = sanitize.text_to_html(body_text(raw, plain))
    document = ""
    if rich.has_html:
        document = sanitize.document(body_html(raw, rich, lambda url: None, False).html)
    return Rendered(headers_of(raw), text_html, document, rich.attachments)


def load(mailbox_id: int, folder_id: int, uid: int, prefer_html: bool = True) -> Opened:
    """Return a message of this mailbox; raise NoSuchFolder or NoSuchMessage."""
    folder = get_folder(mailbox_id, folder_id)
    message = get_message(folder, uid)
    raw = store_messages.read(message)
    structure = parts.structure_of(raw, message.bodystructure)
    return Opened(folder, message, raw, structure, headers_of(raw),
                  parts.layout(structure, prefer_html=prefer_html))


def get_message(folder: Folder, uid: int) -> Message:
    message = Message.objects.filter(folder=folder, uid=uid).first()
    if message is None:
        raise NoSuchMessage(uid)
    return message


_SHOWN = ("from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id",
          "in-reply-to", "references", "list-id", "list-unsubscribe")


def headers_of(raw: bytes) -> dict[str, str]:
    """Return the header fields webmail uses, decoded (RFC 2047) and unfolded."""
    parsed = BytesHeaderParser(policy=compat32).parsebytes(split_header_block(raw))
    result = {}
    for name in _SHOWN:
        value = parsed.get(name)
        if value is not None:
            result[name] = " ".join(decode_text(str(value)).split())
    return result


def sent_date(headers: dict[str, str]) -> datetime | None:
    try:
        return parsedate_to_datetime(headers.get("date", ""))
    except (TypeError, ValueError, IndexError):
        return None


def mark_seen(opened: Opened) -> None:
    """Flag a message \\Seen when it is opened (as every mail client does)."""
    if not opened.message.seen:
        store_messages.store_flags(opened.folder.pk, [opened.message.uid], "add", ["\\Seen"])
        opened.message.seen = True


def part_of(mailbox_id: int, folder_id: int, uid: int, path: str
            ) -> tuple[parts.Part, bytes]:
    """Return an attachment (or inline part) and its decoded content."""
    folder = get_folder(mailbox_id, folder_id)
    message = get_message(folder, uid)
    raw = store_messages.read(message)
    part = parts.find(parts.structure_of(raw, message.bodystructure), path)
    if part is None:
        raise NoSuchMessage(uid)
    return part, parts.content(raw, part)


def original(mailbox_id: int, folder_id: int, uid: int) -> bytes:
    """Return the message exactly as stored."""
    return store_messages.read(get_message(get_folder(mailbox_id, folder_id), uid))
