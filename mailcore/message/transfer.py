"""Content transfer encodings (RFC 2045 section 6): undoing them, and base64 for binary parts."""

from __future__ import annotations

import base64
import binascii
import re

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
