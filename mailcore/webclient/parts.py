"""A stored message's MIME parts as webmail shows them: body texts, attachments, inline images.

It reads the part tree the store keeps per message (mailcore.message.mime.parse_structure,
with byte offsets) and slices parts out of the raw message, so nothing is parsed twice.
A part is named by its IMAP section number ("1", "2.1"), stable for a stored message.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_to_bytes

from mailcore.message import mime
from mailcore.message.summary import decode_text

_TOKEN = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


@dataclass
class Part:
    """One leaf (or message/rfc822) part of a message."""

    path: str
    content_type: str  # "image/png": lower case, "application/octet-stream" if odd
    filename: str
    size: int  # octets as stored (before transfer decoding)
    disposition: str  # "attachment", "inline" or ""
    content_id: str  # without the angle brackets
    charset: str
    encoding: str
    node: dict = field(repr=False)

    @property
    def is_image(self) -> bool:
        return self.content_type in {"image/png", "image/jpeg", "image/gif", "image/webp",
                                     "image/bmp"}

    @property
    def approximate_size(self) -> int:
        """Return the decoded size, estimated (base64 takes 4 octets for 3)."""
        return self.size * 3 // 4 if self.encoding == "base64" else self.size


@dataclass
class Layout:
    """What to show of a message: its body texts in order, its attachments, its cid: parts."""

    texts: list[Part]
    attachments: list[Part]
    inline: dict[str, Part]  # Content-ID -> part, for cid: URLs in the HTML

    @property
    def has_html(self) -> bool:
        return any(p.content_type == "text/html" for p in self.texts)


def structure_of(raw: bytes, stored: dict | None) -> dict:
    """Return the message's part tree: the stored one, or parsed now for an old row."""
    return stored if stored else mime.parse_structure(raw)


def has_attachments(structure: dict | None) -> bool:
    """Return whether a message has attachments (for the list's paper-clip), cheaply."""
    if not structure:
        return False
    return bool(layout(structure).attachments)


def layout(structure: dict, prefer_html: bool = True) -> Layout:
    """Sort a message's parts into body texts, attachments and inline (cid:) parts."""
    result = Layout([], [], {})
    _walk(structure, [], result, prefer_html, related=False)
    return result


def _walk(node: dict, path: list[int], out: Layout, prefer_html: bool, related: bool) -> None:
    kind = node["kind"]
    if kind == "multipart":
        subtype = (node.get("subtype") or "").lower()
        children = node.get("parts") or []
        numbered = [(child, path + [i + 1]) for i, child in enumerate(children)]
        if not numbered:
            return
        if subtype == "alternative":
            chosen = _best_alternative(numbered, prefer_html)
            _walk(chosen[0], chosen[1], out, prefer_html, related=False)
            return
        if subtype == "related":
            root, root_path = numbered[0]
            _walk(root, root_path, out, prefer_html, related=False)
            for child, child_path in numbered[1:]:
                _walk(child, child_path, out, prefer_html, related=True)
            return
        for child, child_path in numbered:
            _walk(child, child_path, out, prefer_html, related=False)
        return
    part = _part(node, path or [1])
    if kind == "message":
        out.attachments.append(part)
        return
    is_text = part.content_type in ("text/plain", "text/html")
    # A named text part after the body is a file (notes.txt), unless marked inline.
    named_file = bool(part.filename) and part.disposition != "inline" and bool(out.texts)
    if is_text and part.disposition != "attachment" and not related and not named_file:
        out.texts.append(part)
        return
    if part.content_id and (related or part.disposition != "attachment"):
        out.inline[part.content_id] = part
        if related:
            return  # shown in the HTML, not listed
    out.attachments.append(part)


def _best_alternative(numbered: list[tuple[dict, list[int]]], prefer_html: bool
                      ) -> tuple[dict, list[int]]:
    """Return the alternative to show: the richest HTML one, or plain text when preferred."""
    def flavour(node: dict) -> str:
        if node["kind"] == "multipart":
            parts = node.get("parts") or []
            return flavour(parts[0]) if parts else ""
        return _content_type(node)

    wanted = ["text/html", "text/plain"] if prefer_html else ["text/plain", "text/html"]
    for kind in wanted:
        # RFC 2046 section 5.1.4: the last alternative is the preferred one.
        for node, path in reversed(numbered):
            if flavour(node) == kind:
                return node, path
    return numbered[-1]


def _content_type(node: dict) -> str:
    if node["kind"] == "message":
        return "message/rfc822"
    if node.get("type") is None:
        return "text/plain"  # RFC 2045 section 5.2
    value = f"{node['type']}/{node.get('subtype') or ''}".lower()
    return value if _TOKEN.match(value) else "application/octet-stream"


def _param(pairs: list | None, name: str) -> str:
    """Return a MIME parameter decoded: RFC 2231 (name*) first, then RFC 2047 words."""
    pairs = pairs or []
    for key, value in pairs:
        if key and key.lower() == name + "*" and value:
            pieces = value.split("'", 2)
            charset, encoded = (pieces[0], pieces[2]) if len(pieces) == 3 else ("", value)
            data = unquote_to_bytes(encoded)
            try:
                return data.decode(charset or "utf-8", "replace")
            except LookupError:
                return data.decode("utf-8", "replace")
    for key, value in pairs:
        if key and key.lower() == name and value:
            return decode_text(value)
    return ""


# Names for unnamed parts whose type says what they are: a bounce's (RFC 3464 section 2,
# RFC 6533 for the internationalised types) and a read receipt's (RFC 8098).
_NAMES_BY_TYPE = {
    "message/delivery-status": "delivery-status.txt",
    "message/global-delivery-status": "delivery-status.txt",
    "text/rfc822-headers": "original-message-headers.txt",
    "message/global-headers": "original-message-headers.txt",
    "message/disposition-notification": "disposition-notification.txt",
    "message/global-disposition-notification": "disposition-notification.txt",
}


def _part(node: dict, path: list[int]) -> Part:
    content_type = _content_type(node)
    filename = _param(node.get("disposition_params"), "filename") or _param(
        node.get("params"), "name") or _NAMES_BY_TYPE.get(content_type, "")
    if not filename and node["kind"] == "message":
        envelope = (node.get("message") or {}).get("envelope") or []
        subject = decode_text(envelope[1]) if len(envelope) > 1 and envelope[1] else ""
        filename = f"{subject or 'message'}.eml"
    content_id = (node.get("id") or "").strip()
    if content_id.startswith("<") and content_id.endswith(">"):
        content_id = content_id[1:-1]
    return Part(
        path=".".join(str(n) for n in path),
        content_type=content_type,
        filename=safe_filename(filename),
        size=node.get("size") or 0,
        disposition=(node.get("disposition") or "").lower(),
        content_id=content_id,
        charset=_param(node.get("params"), "charset") or "",
        encoding=(node.get("encoding") or "").lower(),
        node=node,
    )


def safe_filename(name: str) -> str:
    """Return a file name without paths or characters a file system or header dislikes."""
    name = _UNSAFE_NAME.sub("_", name).strip(" .")
    return name[:200]


def find(structure: dict, path: str) -> Part | None:
    """Return the part at a section path ("2.1"), or None if there is no such leaf."""
    if not re.fullmatch(r"[1-9][0-9]{0,4}(?:\.[1-9][0-9]{0,4}){0,20}", path):
        return None
    numbers = [int(n) for n in path.split(".")]
    node = mime.find_part(structure, numbers)
    if node is None or node["kind"] == "multipart":
        return None
    return _part(node, numbers)


def content(raw: bytes, part: Part) -> bytes:
    """Return a part's content with its transfer encoding undone (tolerantly)."""
    start, end = part.node["body"]
    data = raw[start:end]
    if part.encoding == "base64":
        return _base64(data)
    if part.encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data


def _base64(data: bytes) -> bytes:
    cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
    try:
        return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        return b""


def text(raw: bytes, part: Part) -> str:
    """Return a text part decoded to str (its charset, UTF-8 when unknown or wrong)."""
    data = content(raw, part)
    charset = part.charset.lower() or "utf-8"
    if charset in ("us-ascii", "ascii"):
        charset = "utf-8"  # many senders label UTF-8 as ASCII
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def cid_key(url: str) -> str:
    """Return the Content-ID a cid: URL names (RFC 2392: %-encoded, no brackets)."""
    return unquote(url[4:]).strip().strip("<>")
