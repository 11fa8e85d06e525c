"""Content transfer encodings (RFC 2045 section 6): undoing them, and base64 for binary parts;
and dot-stuffing, how SMTP and POP3 carry a message in their multi-line data."""

from __future__ import annotations

import base64
import binascii
import re

from mailcore.message.mime import parse_structure

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_LINE = re.compile(rb"([^\r\n]*)(\r\n|\n|\r|$)")
_TRAILING_SPACE = b" \t"


def decode_base64(body: bytes) -> bytes:
    """Return base64 content decoded tolerantly, as mail readers do.

    Line breaks and stray characters are skipped; the data ends at the first "=".
    """
    data = _NOT_BASE64.sub(b"", body.split(b"=", 1)[0])
    data = data[:len(data) - len(data) % 4 if len(data) % 4 == 1 else len(data)]
    return base64.b64decode(data + b"=" * (-len(data) % 4))


def decode_quoted_printable(body: bytes) -> bytes:
    """Return quoted-printable content decoded (RFC 2045 section 6.7).

    Trailing whitespace on a line is padding added in transport and is dropped (rule 3);
    a line that ends in "=" (whitespace after it dropped too) is a soft line break
    (rule 5). An "=" not followed by two hex digits is kept as it is, as readers do.
    """
    out = bytearray()
    for match in _LINE.finditer(body):
        line, end = match.group(1).rstrip(_TRAILING_SPACE), match.group(2)
        if not line and not end:
            break
        soft = line.endswith(b"=")
        if soft:
            line = line[:-1]
        out += _unescape(line)
        if end and not soft:
            out += b"\r\n" if end == b"\r\n" else end
    return bytes(out)


def _unescape(line: bytes) -> bytes:
    out = bytearray()
    i = 0
    while (j := line.find(b"=", i)) >= 0:
        out += line[i:j]
        code = line[j + 1:j + 3]
        try:
            out += binascii.unhexlify(code) if len(code) == 2 else b"="
            i = j + 3 if len(code) == 2 else j + 1
        except binascii.Error:
            out += b"="
            i = j + 1
    out += line[i:]
    return bytes(out)


def encode_base64(data: bytes) -> bytes:
    """Return data in base64 lines of 76 characters, each ending in CRLF (RFC 2045 6.8)."""
    encoded = base64.b64encode(data)
    return b"".join(encoded[i:i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


_CTE_FIELD = re.compile(rb"content-transfer-encoding[ \t]*:", re.I)
_MIME_FIELD = re.compile(rb"(mime-version|content-type)[ \t]*:", re.I)


def encode_binary_parts(raw: bytes) -> bytes:
    """Return raw with every part that holds a NUL octet re-encoded in base64.

    A message APPENDed as literal8 (RFC 3516) may carry binary parts, which no ordinary
    literal may hold (RFC 9051 section 4.3): BODY[...] could not send them. Dovecot saves
    such parts base64-encoded, and so do we; BINARY[...] still returns the octets.
    """
    if b"\0" not in raw:
        return raw
    edits: list[tuple[int, int, bytes]] = []  # (start, end, replacement), in raw
    _collect(parse_structure(raw), raw, edits)
    out = bytearray(raw)
    for start, end, replacement in sorted(edits, reverse=True):
        out[start:end] = replacement
    return bytes(out)


def _collect(part: dict, raw: bytes, edits: list[tuple[int, int, bytes]]) -> None:
    if part["kind"] == "multipart":
        for child in part.get("parts") or []:
            _collect(child, raw, edits)
        return
    if part["kind"] == "message":
        _collect(part["message"], raw, edits)
        return
    start, end = part["body"]
    if b"\0" not in raw[start:end]:
        return
    header_start, header_end = part["header"]
    edits.append((header_start, header_end, _base64_header(raw[header_start:header_end])))
    edits.append((start, end, encode_base64(raw[start:end]).removesuffix(b"\r\n")))


def _base64_header(header: bytes) -> bytes:
    """Return a part header (ending in its blank line) saying base64 instead of its CTE."""
    fields: list[bytes] = []
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    kept = [f for f in fields if f.strip() and not _CTE_FIELD.match(f)]
    if not any(_MIME_FIELD.match(f) for f in kept):
        # Without either, Content-* fields do not count (RFC 2045 section 4).
        kept.append(b"MIME-Version: 1.0\r\n")
    return b"".join(kept) + b"Content-Transfer-Encoding: base64\r\n\r\n"


def dot_stuffed(body: bytes) -> bytes:
    """Return body as SMTP DATA (RFC 5321 section 4.5.2) and POP3 (RFC 1939 section 3)
    carry it, without the final "." line: a line starting with "." gets another one, and
    the body ends in CRLF. Copies only what it changes: most mail has no such line.
    """
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    if b"\n." in body:  # bytes.replace, not a regular expression: POP3 RETR's hot path
        body = body.replace(b"\n.", b"\n..")
    return b"." + body if body[:1] == b"." else body
