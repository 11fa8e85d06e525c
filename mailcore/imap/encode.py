"""IMAP response syntax: strings as atom, quoted or literal, lists, flags, dates and reply lines."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from mailcore.imap import utf7
from mailcore.imap.lexer import MONTHS
from mailcore.message.sequenceset import SequenceSet

CRLF = b"\r\n"
NIL = b"NIL"
MAX_QUOTED = 1000  # longer strings go out as literals, keeping reply lines short

Part = bytes | str | int  # bytes as they are, str as UTF-8 (atoms, keywords), int in decimal

_ASTRING_SAFE = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
_QUOTABLE_7BIT = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*")
_QUOTABLE_8BIT = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\xff]*")
_QUOTE_ESCAPE = re.compile(rb'(["\\])')
_LINE_BREAKS = re.compile(r"[\r\n\x00]+")


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def part(value: Part) -> bytes:
    """Return one response part as bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        raise TypeError("a response part cannot be a bool")
    if isinstance(value, int):
        return str(value).encode("ascii")
    return value.encode("utf-8")


def literal(data: bytes, *, binary: bool = False) -> bytes:
    """Return data as a literal, or a literal8 ("~{n}", RFC 3516) for binary content."""
    return b"%s{%d}\r\n%s" % (b"~" if binary else b"", len(data), data)


def quoted(value: str | bytes) -> bytes:
    """Return a quoted string, escaping '"' and '\\'; the caller checks it is quotable."""
    return b'"' + _QUOTE_ESCAPE.sub(rb"\\\1", _bytes(value)) + b'"'


def is_quotable(data: bytes, *, utf8: bool = False) -> bool:
    """Tell whether data may go out quoted: short, no CR, LF or NUL, 8-bit only as UTF-8."""
    if len(data) > MAX_QUOTED:
        return False
    if _QUOTABLE_7BIT.fullmatch(data):
        return True
    if not utf8 or not _QUOTABLE_8BIT.fullmatch(data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def string(value: str | bytes, *, utf8: bool = False) -> bytes:
    """Return a string quoted when it can be, else as a literal.

    utf8 says UTF8=ACCEPT or IMAP4rev2 is in force, so UTF-8 may be quoted (RFC 9051).
    """
    data = _bytes(value)
    return quoted(data) if is_quotable(data, utf8=utf8) else literal(data)


def astring(value: str | bytes, *, utf8: bool = False) -> bytes:
    """Return a string as a bare atom when it is one (and not NIL), else as string() does."""
    data = _bytes(value)
    if _ASTRING_SAFE.fullmatch(data) and data.upper() != NIL:
        return data
    return string(data, utf8=utf8)


def nstring(value: str | bytes | None, *, utf8: bool = False) -> bytes:
    """Return NIL for None, else a string."""
    return NIL if value is None else string(value, utf8=utf8)


def mailbox(name: str, *, utf8: bool = False) -> bytes:
    """Return a mailbox name in modified UTF-7 (or UTF-8 when utf8), as an astring."""
    if utf7.is_inbox(name):
        return b"INBOX"
    return astring(name if utf8 else utf7.encode(name), utf8=utf8)


def paren_list(items: Iterable[Part]) -> bytes:
    """Return "(" items separated by SP ")"."""
    return b"(" + b" ".join(part(i) for i in items) + b")"


def flags(names: Iterable[str]) -> bytes:
    """Return a flag list such as (\\Seen $Forwarded)."""
    return _flag_list(tuple(names))


@functools.lru_cache(maxsize=4096)
def _flag_list(names: tuple[str, ...]) -> bytes:
    # A folder's messages share a few combinations of flags: each is encoded once.
    return paren_list(names)


def date_time(moment: datetime) -> bytes:
    """Return a quoted date-time "dd-Mon-yyyy hh:mm:ss +zzzz"; a naive one is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.utcoffset()
    minutes = round(offset.total_seconds() / 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return (f'"{moment.day:02d}-{MONTHS[moment.month - 1]}-{moment.year:04d} '
            f'{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} '
            f'{sign}{hours:02d}{minutes:02d}"').encode("ascii")


def sequence_set(numbers: Iterable[int] | SequenceSet) -> bytes:
    """Return numbers in compact sequence-set form, e.g. 1:3,7 (for COPYUID, VANISHED)."""
    if not isinstance(numbers, SequenceSet):
        numbers = SequenceSet.from_numbers(numbers)
    return str(numbers).encode("ascii")


def ordered_set(numbers: list[int]) -> bytes:
    """Return numbers, in their order, as a sequence-set: "a:b" only for ascending runs."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return b",".join(b"%d" % a if a == b else b"%d:%d" % (a, b) for a, b in runs)


def text(value: str) -> bytes:
    """Return human-readable response text on one line (never empty, never CR or LF)."""
    value = _LINE_BREAKS.sub(" ", value).strip()
    return (value or "Done").encode("utf-8")


def response_code(name: str, *args: Part) -> bytes:
    """Return a response code such as [APPENDUID 38505 3955] or [PERMANENTFLAGS (...)]."""
    return b"[" + b" ".join([part(name), *(part(a) for a in args)]) + b"]"


def untagged(*parts: Part) -> bytes:
    """Return an untagged response line, e.g. untagged(3, "EXISTS") -> b"* 3 EXISTS\\r\\n"."""
    return b"* " + b" ".join(part(p) for p in parts) + CRLF


def _status_line(prefix: bytes, status: str, message: str, code: bytes | None) -> bytes:
    middle = [prefix, status.encode("ascii")]
    if code is not None:
        middle.append(code)
    return b" ".join([*middle, text(message)]) + CRLF


def tagged(tag: str, status: str, message: str, code: bytes | None = None) -> bytes:
    """Return a tagged completion: tag OK|NO|BAD [code] text."""
    return _status_line(tag.encode("ascii"), status, message, code)


def untagged_status(status: str, message: str, code: bytes | None = None) -> bytes:
    """Return an untagged status line: * OK|NO|BAD|BYE|PREAUTH [code] text."""
    return _status_line(b"*", status, message, code)


def continuation(message: str = "Ready") -> bytes:
    """Return a continuation request: + text."""
    return b"+ " + text(message) + CRLF


def fetch_response(number: int, items: Iterable[tuple[str | bytes, bytes]]) -> bytes:
    """Return * n FETCH (name value ...) from (label, encoded value) pairs."""
    body = b" ".join(part(label) + b" " + value for label, value in items)
    return b"* %d FETCH (%s)\r\n" % (number, body)
