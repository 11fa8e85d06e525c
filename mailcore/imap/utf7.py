"""Modified UTF-7 mailbox names (RFC 3501 section 5.1.3) and the INBOX name rule."""

from __future__ import annotations

import base64
import binascii
import re

_B64_RUN = re.compile(r"[A-Za-z0-9+,]*")


class InvalidName(ValueError):
    """A mailbox name that is not valid, canonical modified UTF-7."""


# A name that is a valid astring but not valid modified UTF-7 (or holds control
# characters) names no mailbox: it is not a syntax error (RFC 3501 section 5.1.3 asks
# only that such names be refused), so it travels on marked by this prefix. No folder
# name holds a control character, so every lookup finds nothing (NO [NONEXISTENT], LIST
# OK and empty), and CREATE refuses it with [CANNOT]. DEL, not NUL: Postgres refuses NUL
# in text even as a query parameter.
UNNAMEABLE = "\x7f"


def unnameable(raw: str) -> str:
    """Return the stand-in for a name no mailbox can have."""
    return UNNAMEABLE + raw.replace("\0", "")


def is_unnameable(name: str) -> bool:
    return name.startswith(UNNAMEABLE)


def encode(name: str) -> str:
    """Return the modified UTF-7 form of a mailbox name."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be", "surrogatepass")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ","))
            out.append("-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode(name: str | bytes) -> str:
    """Return the Unicode mailbox name for its modified UTF-7 form.

    Raise InvalidName unless the input is the one canonical encoding of its result:
    printable ASCII only, "&" shifts closed by "-", no printable ASCII inside a shift,
    no two shifts in a row, zero padding bits and paired surrogates.
    """
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidName("8-bit characters in a modified UTF-7 name") from None
    out: list[str] = []
    i = 0
    while i < len(name):
        char = name[i]
        if not 0x20 <= ord(char) <= 0x7E:
            raise InvalidName("control or 8-bit character in a mailbox name")
        if char != "&":
            out.append(char)
            i += 1
            continue
        run = _B64_RUN.match(name, i + 1)
        assert run is not None
        end = run.end()
        if end >= len(name) or name[end] != "-":
            raise InvalidName("unterminated modified base64 in a mailbox name")
        chunk = run.group()
        out.append("&" if not chunk else _decode_run(chunk))
        i = end + 1
    result = "".join(out)
    if encode(result) != name:
        raise InvalidName("mailbox name is not canonical modified UTF-7")
    return result


def _decode_run(chunk: str) -> str:
    if len(chunk) % 4 == 1:
        raise InvalidName("truncated modified base64 in a mailbox name")
    padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except binascii.Error:
        raise InvalidName("bad modified base64 in a mailbox name") from None
    if len(raw) % 2:
        raise InvalidName("odd UTF-16 length in a mailbox name")
    try:
        return raw.decode("utf-16-be")
    except UnicodeDecodeError:
        raise InvalidName("unpaired UTF-16 surrogate in a mailbox name") from None


def is_inbox(name: str) -> bool:
    """Tell whether a name is INBOX, which matches in any case (RFC 3501 section 5.1)."""
    return name.upper() == "INBOX"


def normalize(name: str, delimiter: str | None = None) -> str:
    """Return the name with INBOX (and, given a delimiter, an INBOX prefix) upper-cased."""
    if is_inbox(name):
        return "INBOX"
    if delimiter and name[:6].upper() == "INBOX" + delimiter.upper():
        return "INBOX" + name[5:]
    return name
