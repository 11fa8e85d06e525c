"""The Authentication-Results header field (RFC 8601): ours, and forgeries of ours.

We add one field with MAIL_HOSTNAME as authserv-id. A field that arrives claiming that id
was not written by us (RFC 8601 section 5: such fields MUST be removed before delivery, or
a sender could vouch for itself in our name); fields of other authserv-ids stay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# One header field, with its folded continuation lines.
_FIELD = re.compile(rb"[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")
_NAME = re.compile(rb"^authentication-results[ \t]*:", re.I)
_COMMENT = re.compile(rb"\((?:[^()\\]|\\.)*\)")
_TOKEN = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~@]+$")


def strip_ours(content: bytes, authserv_id: str) -> bytes:
    """Return content without the Authentication-Results fields naming our authserv-id."""
    head, sep, body = content.partition(b"\r\n\r\n")
    if not sep or not re.search(rb"(?im)^authentication-results[ \t]*:", head):
        return content  # the common case: nothing to parse
    fields = _FIELD.findall(head + b"\r\n")
    kept = [f for f in fields if not (_NAME.match(f) and _claims(f, authserv_id))]
    if len(kept) == len(fields):
        return content
    return b"".join(kept)[:-2] + sep + body if kept else body


def _claims(field: bytes, authserv_id: str) -> bool:
    value = field.split(b":", 1)[1]
    value = _COMMENT.sub(b" ", value.replace(b"\r\n", b""))
    first = value.split(b";", 1)[0].split()
    return bool(first) and first[0].decode("utf-8", "replace").lower().strip('"') == (
        authserv_id.lower().rstrip("."))


def value(text: str) -> str:
    """Return text as an RFC 8601 value: a token, or a quoted-string (RFC 2045)."""
    text = "".join(ch for ch in text if ch.isprintable())[:255]
    if _TOKEN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def comment(text: str) -> str:
    """Return text safe inside a comment: no parentheses, backslashes or control bytes."""
    return "".join(ch for ch in text if ch.isprintable() and ch not in "()\\")[:200]


def header(authserv_id: str, results: Sequence[str]) -> bytes:
    """Return the field: "Authentication-Results: <id>;" then one resinfo per line.

    results: each "method=result [reason] [properties]" already built; none gives "none"
    (RFC 8601 section 2.2, no-result).
    """
    lines = [f"Authentication-Results: {authserv_id}"]
    if not results:
        return (lines[0] + "; none\r\n").encode()
    text = lines[0] + ";\r\n\t" + ";\r\n\t".join(results) + "\r\n"
    return text.encode("utf-8", "replace")
