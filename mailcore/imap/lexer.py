"""The IMAP lexical layer: literal markers, atoms, strings, lists, numbers, dates, sequence sets."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple, TypeVar

from mailcore.imap import utf7
from mailcore.message.sequenceset import SequenceSet
from mailcore.sessions import BadSyntax

T = TypeVar("T")

MAX_NUMBER = 2**32 - 1  # number and nz-number (RFC 9051 section 9)
MAX_NUMBER64 = 2**63 - 1  # number64: sizes, mod-sequences
MAX_DEPTH = 10  # nested parenthesised lists in one command
LITERAL_MINUS_MAX = 4096  # largest non-synchronizing literal under LITERAL- (RFC 7888)

# RFC 3501 section 9: ATOM-CHAR is any CHAR except atom-specials.
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_ASTRING = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')  # ATOM-CHAR plus "]"
_LIST_MAILBOX = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')  # plus list-wildcards "%" "*"
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
_DIGITS = re.compile(rb"[0-9]+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_QUOTED_ESCAPE = re.compile(rb'\\(["\\])')
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}(?:\r\n|\n)")
_LITERAL_AT_END = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\r?\n?\Z")
_SEQUENCE = re.compile(rb"[0-9:*,$]+")
_DATE = re.compile(rb" ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_TIME_ZONE = re.compile(rb" ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBERS = {name.upper().encode(): n for n, name in enumerate(MONTHS, 1)}
SYSTEM_FLAGS = {f.upper(): f for f in (
    "\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")}


class LiteralMarker(NamedTuple):
    """A literal announced at the end of a line: how many octets follow, and how."""

    size: int
    non_synchronizing: bool  # "{n+}": the client sends without waiting for "+" (RFC 7888)
    binary: bool  # "~{n}": literal8, may hold NUL (RFC 3516)


def find_literal(line: bytes) -> LiteralMarker | None:
    """Return the literal announced at the end of a line, or None when the line ends a command.

    Call it on each line as read (with or without its CRLF) so the session can refuse an
    oversized literal or send "+ Ready" before reading any of its octets.
    """
    match = _LITERAL_AT_END.search(line[-32:])
    if match is None:
        return None
    return LiteralMarker(_bounded(match.group(2), MAX_NUMBER64, "literal size"),
                         bool(match.group(3)), bool(match.group(1)))


def _bounded(digits: bytes, largest: int, what: str) -> int:
    if len(digits) > 20 or int(digits) > largest:
        raise BadSyntax(f"{what} too large")
    return int(digits)


def parse_sequence_set(text: bytes | str) -> SequenceSet:
    """Return the sequence set spelled by text; raise BadSyntax if it is not one."""
    if isinstance(text, str):
        text = text.encode("ascii", "replace")
    if text == b"$":
        return SequenceSet(saved=True)
    ranges = []
    for part in text.split(b","):
        ends = part.split(b":")
        if len(ends) > 2:
            raise BadSyntax("bad sequence set")
        low = _seq_number(ends[0])
        ranges.append((low, _seq_number(ends[1]) if len(ends) == 2 else low))
    return SequenceSet(tuple(ranges))


def _seq_number(text: bytes) -> int | None:
    if text == b"*":
        return None
    if not text.isdigit() or text.startswith(b"0"):
        raise BadSyntax("bad sequence set")
    return _bounded(text, MAX_NUMBER, "sequence number")


class Reader:
    """Read the tokens of one complete command (its lines and literals as received)."""

    def __init__(self, data: bytes, *, utf8: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.depth = 0
        self.utf8 = utf8  # UTF8=ACCEPT or IMAP4rev2: mailbox names are UTF-8, not mUTF-7

    # Structure.

    def at_end(self) -> bool:
        """Tell whether only the closing line end remains."""
        if len(self.data) - self.pos > 2:  # without copying what may be a large remainder
            return False
        return self.data[self.pos:] in (b"", b"\r\n", b"\n")

    def end(self) -> None:
        """Require the end of the command."""
        if not self.at_end():
            raise BadSyntax("unexpected characters after the command")
        self.pos = len(self.data)

    def peek(self, token: bytes) -> bool:
        """Tell whether the input continues with token, ignoring case."""
        return self.data[self.pos:self.pos + len(token)].upper() == token

    def take(self, token: bytes) -> bool:
        """Consume token (ignoring case) if it comes next."""
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    def take_word(self, word: bytes) -> bool:
        """Consume word (ignoring case) if it comes next as a whole atom, not a prefix."""
        end = self.pos + len(word)
        if self.peek(word) and not _ATOM.match(self.data[end:end + 1]):
            self.pos = end
            return True
        return False

    def expect(self, token: bytes, what: str | None = None) -> None:
        """Consume token or raise BadSyntax."""
        if not self.take(token):
            raise BadSyntax(f"expected {what or token.decode()}")

    def space(self) -> None:
        """Consume the single SP between two arguments."""
        if not self.take(b" "):
            raise BadSyntax("missing argument" if self.at_end() else "expected a space")

    def open(self) -> None:
        """Consume "(" and count the nesting depth."""
        self.expect(b"(")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise BadSyntax("too deeply nested")

    def close(self) -> None:
        """Consume ")"."""
        self.expect(b")")
        self.depth -= 1

    def paren_list(self, item: Callable[[], T], *, empty: bool = True) -> list[T]:
        """Read "(" item *(SP item) ")"; refuse "()" unless empty is allowed."""
        self.open()
        items: list[T] = []
        if not self.peek(b")"):
            items.append(item())
            while self.take(b" "):
                items.append(item())
        elif not empty:
            raise BadSyntax("empty list")
        self.close()
        return items

    # Atoms and numbers.

    def _match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        match = pattern.match(self.data, self.pos)
        if match is None:
            raise BadSyntax(f"expected {what}")
        self.pos = match.end()
        return match.group()

    def atom(self) -> str:
        """Read an atom."""
        return self._match(_ATOM, "an atom").decode("ascii")

    def keyword(self) -> str:
        """Read an atom and return it upper-cased (command names, options, items)."""
        return self.atom().upper()

    def tag(self) -> str:
        """Read a command tag."""
        return self._match(_TAG, "a tag").decode("ascii")

    def number(self, largest: int = MAX_NUMBER) -> int:
        """Read a number no larger than largest."""
        return _bounded(self._match(_DIGITS, "a number"), largest, "number")

    def nz_number(self, largest: int = MAX_NUMBER) -> int:
        """Read a non-zero number."""
        n = self.number(largest)
        if n == 0:
            raise BadSyntax("expected a non-zero number")
        return n

    def sequence_set(self) -> SequenceSet:
        """Read a sequence set."""
        return parse_sequence_set(self._match(_SEQUENCE, "a sequence set"))

    # Strings.

    def _quoted(self) -> bytes:
        match = _QUOTED.match(self.data, self.pos)
        if match is None:
            raise BadSyntax("bad or unterminated quoted string")
        self.pos = match.end()
        return _QUOTED_ESCAPE.sub(rb"\1", match.group(1))

    def literal(self, *, binary: bool = False) -> tuple[bytes, bool]:
        """Read a literal (or literal8 when allowed); return its octets and whether it was ~{n}."""
        match = _LITERAL.match(self.data, self.pos)
        if match is None:
            raise BadSyntax("expected a literal")
        if match.group(1) and not binary:
            raise BadSyntax("binary literal not allowed here")
        size = _bounded(match.group(2), MAX_NUMBER64, "literal size")
        start = match.end()
        if start + size > len(self.data):
            raise BadSyntax("literal shorter than announced")
        self.pos = start + size
        octets = self.data[start:self.pos]
        if not match.group(1) and b"\0" in octets:
            raise BadSyntax("NUL in a literal")
        return octets, bool(match.group(1))

    def string_bytes(self) -> bytes:
        """Read a quoted string or a literal and return its octets."""
        if self.peek(b'"'):
            return self._quoted()
        if self.peek(b"{") or self.peek(b"~{"):
            return self.literal()[0]
        raise BadSyntax("expected a string")

    def astring_bytes(self) -> bytes:
        """Read an astring (atom, quoted string or literal) and return its octets."""
        if self.peek(b'"') or self.peek(b"{") or self.peek(b"~{"):
            return self.string_bytes()
        return self._match(_ASTRING, "an atom or string")

    def nstring_bytes(self) -> bytes | None:
        """Read a string or NIL."""
        if self.take_word(b"NIL"):
            return None
        return self.string_bytes()

    def string(self) -> str:
        """Read a string as UTF-8 text."""
        return _text(self.string_bytes())

    def astring(self) -> str:
        """Read an astring as UTF-8 text."""
        return _text(self.astring_bytes())

    def nstring(self) -> str | None:
        """Read a string or NIL as UTF-8 text."""
        value = self.nstring_bytes()
        return None if value is None else _text(value)

    def mailbox(self, *, inbox: bool = True) -> str:
        """Read a mailbox name, decoded from modified UTF-7 (or UTF-8), INBOX upper-cased.

        Pass inbox=False for a LIST reference, which is a prefix rather than a name.
        """
        name = self._name(self.astring_bytes())
        return utf7.normalize(name) if inbox else name

    def list_mailbox(self) -> str:
        """Read a LIST pattern: a string, or atom characters plus "%" "*" and "]"."""
        if self.peek(b'"') or self.peek(b"{") or self.peek(b"~{"):
            return self._name(self.string_bytes())
        return self._name(self._match(_LIST_MAILBOX, "a mailbox pattern"))

    def _name(self, raw: bytes) -> str:
        if self.utf8:
            name = _text(raw)
        else:
            try:
                name = utf7.decode(raw)
            except utf7.InvalidName:
                return utf7.unnameable(raw.decode("utf-8", "replace"))
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
            return utf7.unnameable(name)
        return name

    # Flags and dates.

    def flag(self) -> str:
        """Read a flag: a system flag (canonical case), "\\" extension atom, or a keyword."""
        if self.take(b"\\"):
            name = "\\" + self.atom()
            return SYSTEM_FLAGS.get(name.upper(), name)
        return self.atom()

    def flag_list(self) -> list[str]:
        """Read "(" [flag *(SP flag)] ")"."""
        return self.paren_list(self.flag)

    def date(self) -> date:
        """Read a date (d-MMM-yyyy), bare or quoted."""
        quoted = self.take(b'"')
        value = self._date_text()
        if quoted:
            self.expect(b'"', "closing quote")
        return value

    def _date_text(self) -> date:
        match = _DATE.match(self.data, self.pos)
        month = _MONTH_NUMBERS.get(match.group(2).upper()) if match else None
        if match is None or month is None:
            raise BadSyntax("bad date")
        self.pos = match.end()
        try:
            return date(int(match.group(3)), month, int(match.group(1)))
        except ValueError:
            raise BadSyntax("bad date") from None

    def date_time(self) -> datetime:
        """Read a quoted date-time "dd-MMM-yyyy hh:mm:ss +zzzz" as an aware datetime."""
        self.expect(b'"', "a date-time")
        day = self._date_text()
        match = _TIME_ZONE.match(self.data, self.pos)
        if match is None:
            raise BadSyntax("bad date-time")
        self.pos = match.end()
        self.expect(b'"', "closing quote")
        hour, minute, second, sign, zh, zm = match.groups()
        offset = timedelta(hours=int(zh), minutes=int(zm))
        if (int(hour) > 23 or int(minute) > 59 or int(second) > 60 or int(zh) > 23
                or int(zm) > 59):
            raise BadSyntax("bad date-time")
        return datetime(day.year, day.month, day.day, int(hour), int(minute),
                        min(int(second), 59),
                        tzinfo=timezone(-offset if sign == b"-" else offset))


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSyntax("string is not valid UTF-8") from None
