"""Header fields for IMAP: reading a header block, RFC 5322 tokens, addresses and ENVELOPE.

Everything here follows what Dovecot (2.3) answers, byte for byte where it can, because
clients are tested against it: raw header text (RFC 2047 words left encoded), the last
Subject/Date/Message-ID/In-Reply-To wins, address headers that repeat are concatenated,
broken addresses become MISSING_MAILBOX / MISSING_DOMAIN, and strings are written quoted
or as literals by the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

# RFC 5322 atext (with 8-bit bytes allowed, as Dovecot does); the MIME token is the same
# set less "/", "=" and "?" (RFC 2045 tspecials), plus "." which a token may hold.
_ATEXT = frozenset(
    b"!#$%&'*+-/=?^_`{|}~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
) | frozenset(range(0x80, 0x100))
_TOKEN = (_ATEXT - frozenset(b"/=?")) | frozenset(b".")
_ATEXT_DOT = _ATEXT | frozenset(b".")
_LWSP = frozenset(b" \t\r\n")

ENVELOPE_FIELDS = (
    "date", "subject", "from", "sender", "reply-to",
    "to", "cc", "bcc", "in-reply-to", "message-id",
)
_ADDRESS_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})

Address = list  # [name, adl, mailbox, host], each str or None (RFC 3501 section 7.4.2)


# -- Header blocks --------------------------------------------------------------------

class Field(NamedTuple):
    """One header field: its name, unfolded value (None without a colon), and byte span."""

    name: bytes
    value: bytes | None
    start: int
    end: int


class Header(NamedTuple):
    """A parsed header block: its fields, where it ends, and how it ended."""

    fields: list[Field]
    end: int  # offset just past the header (including its blank line, if any)
    next: int  # where reading goes on: end, or the boundary line that cut the header short
    blank_line: bool  # the header ended with an empty line (not at end of data/boundary)


def read_header(
    raw: bytes, pos: int = 0, end: int | None = None,
    is_boundary: Callable[[int], bool] | None = None,
) -> Header:
    """Read the header fields starting at pos, as Dovecot's header parser does.

    Values skip the white space after the colon; folded lines are joined with a bare LF
    (the CR dropped). A line without a colon is a field whose name is the whole line.
    is_boundary(offset) tells whether a line starting there is an enclosing MIME
    boundary: such a line ends the header, and the line break before it belongs to the
    boundary (RFC 2046 section 5.1.1).
    """
    if end is None:
        end = len(raw)
    fields: list[Field] = []
    last_newline = 0  # size of the line break that ended the previous physical line
    while pos < end:
        if is_boundary is not None and is_boundary(pos):
            return Header(fields, pos - last_newline, pos, False)
        if raw[pos] == 0x0A:
            return Header(fields, pos + 1, pos + 1, True)
        if raw.startswith(b"\r\n", pos) and pos + 2 <= end:
            return Header(fields, pos + 2, pos + 2, True)
        start = pos
        line_end, pos, last_newline = _line(raw, pos, end)
        line = raw[start:line_end]
        colon = line.find(b":")
        if colon < 0:
            name, value = line, None
        else:
            name = line[:colon].rstrip(b" \t")
            value = line[colon + 1:]
            stripped = value.lstrip(b" \t")
            if stripped or not value:
                value = stripped
            else:
                value = value[1:]  # only white space: drop just the first
        parts = [value] if value is not None else []
        # Continuation lines start with white space (RFC 5322 section 2.2.3).
        while pos < end and raw[pos] in (0x20, 0x09):
            cont_start = pos
            line_end, pos, last_newline = _line(raw, pos, end)
            parts.append(raw[cont_start:line_end])
        if value is not None:
            value = b"\n".join(parts)
        fields.append(Field(name, value, start, pos))
    return Header(fields, pos, pos, False)


def field_spans(raw: bytes, pos: int = 0, end: int | None = None
                ) -> tuple[list[tuple[str, int, int]], int, bool]:
    """Return read_header()'s fields as (upper-case name, start, end), its end and blank_line.

    The same reading, without unfolding values: for BODY[HEADER.FIELDS ...], which only
    picks fields by name. A line without a colon has the name "" (see field_name).
    """
    if end is None:
        end = len(raw)
    fields: list[tuple[str, int, int]] = []
    find = raw.find
    while pos < end:
        if raw[pos] == 0x0A:
            return fields, pos + 1, True
        if raw.startswith(b"\r\n", pos) and pos + 2 <= end:
            return fields, pos + 2, True
        start = pos
        lf = find(b"\n", pos, end)
        pos = end if lf < 0 else lf + 1
        colon = find(b":", start, pos)  # the line break holds none
        name = "" if colon < 0 else raw[start:colon].rstrip(b" \t").decode("latin-1").upper()
        while pos < end and raw[pos] in (0x20, 0x09):
            lf = find(b"\n", pos, end)
            pos = end if lf < 0 else lf + 1
        fields.append((name, start, pos))
    return fields, pos, False


def _line(raw: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Return (end of content, start of next line, size of the line break) for a line."""
    lf = raw.find(b"\n", pos, end)
    if lf < 0:
        return end, end, 0
    if lf > pos and raw[lf - 1] == 0x0D:
        return lf - 1, lf + 1, 2
    return lf, lf + 1, 1


def field_name(field: Field) -> str:
    """Return a field's name, lower-cased, for comparisons; "" for a line without a colon.

    As in Dovecot, "Subject" alone on a line (even if folded) is not a Subject field.
    """
    return "" if field.value is None else field.name.decode("latin-1").lower()


# -- RFC 5322 / RFC 2045 tokens (Dovecot's rfc822-parser) -------------------------------

class Lexer:
    """A cursor over one header value, with the RFC 822 token rules Dovecot applies.

    Parse methods return 1 (more data follows), 0 (end of data) or -1 (invalid input),
    and skip white space and comments after what they read.
    """

    def __init__(self, data: bytes, keep_comments: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.last_comment: bytearray | None = bytearray() if keep_comments else None

    def peek(self) -> int:
        """Return the current byte, or -1 at the end."""
        return self.data[self.pos] if self.pos < self.end else -1

    def skip_comment(self) -> int:
        data, level = self.data, 1
        if self.last_comment is not None:
            self.last_comment.clear()
        self.pos += 1
        start = self.pos
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x28:  # (
                level += 1
            elif c == 0x29:  # )
                level -= 1
                if level == 0:
                    if self.last_comment is not None:
                        self.last_comment += data[start:self.pos]
                    self.pos += 1
                    return 1 if self.pos < self.end else 0
            elif c == 0x0A:
                if self.last_comment is not None:
                    stop = self.pos - 1 if self.pos > start and data[self.pos - 1] == 0x0D \
                        else self.pos
                    self.last_comment += data[start:stop]
                    start = self.pos + 1
            elif c == 0x5C:  # backslash
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if data[self.pos] in (0x0D, 0x0A, 0x00):
                    self.pos -= 1
                else:
                    if self.last_comment is not None:
                        self.last_comment += data[start:self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def skip_lwsp(self) -> int:
        data = self.data
        while self.pos < self.end:
            c = data[self.pos]
            if c in _LWSP:
                self.pos += 1
            elif c == 0x28:
                if self.skip_comment() < 0:
                    return -1
            else:
                break
        return 1 if self.pos < self.end else 0

    def _run(self, allowed: frozenset[int]) -> bytes:
        start, data = self.pos, self.data
        while self.pos < self.end and data[self.pos] in allowed:
            self.pos += 1
        return data[start:self.pos]

    def atom(self, out: bytearray) -> int:
        if self.peek() not in _ATEXT:
            return -1
        out += self._run(_ATEXT)
        return self.skip_lwsp() if self.pos < self.end else 0

    def dot_atom(self, out: bytearray) -> int:
        """Read a dot-atom, allowing white space around the dots (RFC 822)."""
        if self.peek() not in _ATEXT:
            return -1
        while True:
            word = self._run(_ATEXT)
            if self.pos >= self.end:
                out += word
                return 0
            if not word:
                return -1
            out += word
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret
            if self.data[self.pos] != 0x2E:
                return 1
            self.pos += 1
            out += b"."
            if self.skip_lwsp() <= 0:
                return -1

    def loose_dot_atom(self, out: bytearray) -> int:
        """Read a local part allowing leading, trailing and double dots (seen in Japan)."""
        ret = -1
        while True:
            while self.peek() == 0x2E:
                out += b"."
                self.pos += 1
                if self.pos >= self.end:
                    return 0
                ret = 1
            if self.peek() == 0x40:
                return ret
            ret = self.atom(out)
            if not (ret > 0 and self.peek() == 0x2E):
                return ret

    def token(self, out: bytearray) -> int:
        out += self._run(_TOKEN)
        return self.skip_lwsp() if self.pos < self.end else 0

    def quoted_string(self, out: bytearray) -> int:
        data = self.data
        self.pos += 1
        start = self.pos
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x22:
                out += data[start:self.pos]
                self.pos += 1
                return self.skip_lwsp()
            if c == 0x0A:  # folding white space: drop the line break, keep the rest
                stop = self.pos - 1 if self.pos > start and data[self.pos - 1] == 0x0D \
                    else self.pos
                out += data[start:stop]
                start = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if data[self.pos] in (0x0D, 0x0A, 0x00):
                    self.pos -= 1
                else:
                    out += data[start:self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def _atom_or_dots(self, out: bytearray) -> int:
        out += self._run(_ATEXT_DOT)
        return self.skip_lwsp() if self.pos < self.end else 0

    def phrase(self, out: bytearray) -> int:
        """Read words (atoms, dots, quoted strings) joined by single spaces."""
        if self.pos >= self.end:
            return 0
        if self.data[self.pos] == 0x2E:
            return -1
        while True:
            if self.data[self.pos] == 0x22:
                ret = self.quoted_string(out)
            else:
                ret = self._atom_or_dots(out)
            if ret <= 0:
                return ret
            c = self.data[self.pos]
            if c not in _ATEXT and c != 0x22 and c != 0x2E:
                break
            out += b" "
        return self.skip_lwsp()

    def domain_literal(self, out: bytearray) -> int:
        data = self.data
        start = self.pos
        self.pos += 1
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x5B:
                return -1
            if c == 0x5D:
                out += data[start:self.pos + 1]
                self.pos += 1
                return self.skip_lwsp()
            if c == 0x0A:
                stop = self.pos - 1 if self.pos > start and data[self.pos - 1] == 0x0D \
                    else self.pos
                out += data[start:stop]
                start = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if data[self.pos] in (0x0D, 0x0A, 0x00):
                    out += data[start:self.pos]
                    start = self.pos
                    self.pos -= 1
            self.pos += 1
        return -1

    def domain(self, out: bytearray) -> int:
        self.pos += 1  # the "@"
        if self.skip_lwsp() <= 0:
            return -1
        if self.data[self.pos] == 0x5B:
            return self.domain_literal(out)
        return self.dot_atom(out)

    def content_type(self, out: bytearray) -> int:
        """Read "type/subtype"; on bad syntax keep what Dovecot keeps (maybe just the type)."""
        if self.skip_lwsp() <= 0:
            return -1
        if self.token(out) <= 0 or not out:
            return -1
        if self.data[self.pos] != 0x2F:
            out.clear()
            return -1
        self.pos += 1
        if self.skip_lwsp() <= 0:
            out.clear()
            return -1
        out += b"/"
        mark = len(out)
        ret = self.token(out)
        if ret < 0 or len(out) == mark or (self.pos < self.end and self.data[self.pos] != 0x3B):
            out.clear()
            return -1
        return ret

    def parameter(self) -> tuple[int, bytes, bytes]:
        """Read '; key=value' (RFC 2045 section 5.1): (1, key, value), (0, ...) or (-1, ...)."""
        if self.pos >= self.end:
            return 0, b"", b""
        if self.data[self.pos] != 0x3B:
            return -1, b"", b""
        self.pos += 1
        if self.skip_lwsp() <= 0:
            return -1, b"", b""
        key = bytearray()
        if self.token(key) <= 0:
            return -1, b"", b""
        if self.data[self.pos] != 0x3D:
            return -1, b"", b""
        self.pos += 1
        value = bytearray()
        ret = self.skip_lwsp()
        if ret <= 0:
            pass  # no value
        elif self.data[self.pos] == 0x22:
            ret = self.quoted_string(value)
        elif self.data[self.pos] == 0x3D:
            # Broken but common: name==?utf-8?b?...?= (an unquoted encoded word).
            start = self.pos
            while self.pos < self.end and self.data[self.pos] not in b"; \t\r\n":
                self.pos += 1
            value += self.data[start:self.pos]
        else:
            ret = self.token(value)
        return (-1 if ret < 0 else 1), bytes(key), bytes(value)


def parameters(lexer: Lexer) -> list[tuple[bytes, bytes]]:
    """Read MIME parameters, joining RFC 2231 continuations as Dovecot does.

    Continued values are concatenated but not decoded: "name*0*=utf-8''a; name*1*=b"
    becomes ("name*", "utf-8''ab"). Broken parameters are skipped. Plain parameters come
    first in their order, then the joined RFC 2231 ones sorted by name.
    """
    plain: list[tuple[bytes, bytes]] = []
    pieces: list[tuple[bytes, int, bool, bytes]] = []  # (key, index, extended, value)
    index = 0  # like Dovecot, "key*" keeps the index of the previous piece
    while True:
        ret, key, value = lexer.parameter()
        if ret == 0:
            break
        if ret < 0:
            if lexer.pos >= lexer.end:
                break
            lexer.pos += 1
            continue
        star = key.find(b"*")
        if star < 0:
            plain.append((key, value))
            continue
        rest = key[star + 1:]
        if not rest:
            extended = True  # "key*": one extended piece, index as left by the last
        else:
            digits = re.match(rb"[0-9]*", rest).group()
            index = int(digits) if digits else 0
            rest = rest[len(digits):]
            extended = rest[:1] == b"*"
            if extended:
                rest = rest[1:]
        if rest:
            plain.append((key, value))
        else:
            pieces.append((key[:star], index, extended, value))
    if not pieces:
        return plain
    pieces.sort(key=lambda p: (p[0], p[1]))
    result = plain
    i = 0
    while i < len(pieces):
        name = pieces[i][0].lower()
        j = i
        while j < len(pieces) and pieces[j][0].lower() == name:
            j += 1
        group = pieces[i:j]
        if any(piece[1] != n for n, piece in enumerate(group)):
            # Missing indexes: not RFC 2231 after all; keep every piece as it was named.
            for key, idx, extended, value in group:
                result.append((b"%s*%d%s" % (key, idx, b"*" if extended else b""), value))
        else:
            extended_any = any(piece[2] for piece in group)
            value = bytearray()
            if extended_any and not group[0][2]:
                value += b"''"
            for _key, _idx, extended, piece_value in group:
                if extended_any and not extended:
                    value += piece_value.replace(b"%", b"%25")
                else:
                    value += piece_value
            result.append((group[0][0] + (b"*" if extended_any else b""), bytes(value)))
        i = j
    return result


# -- Addresses (RFC 5322 section 3.4, Dovecot's message-address) ------------------------

class _AddressParser:
    def __init__(self, value: bytes) -> None:
        self.lex = Lexer(value, keep_comments=True)
        self.out: list[list[bytes | None]] = []
        self.addr: list[bytes | None] = [None, None, None, None]  # name, route, mailbox, domain
        self.invalid = False

    def add(self) -> None:
        self.out.append(self.addr)
        self.addr = [None, None, None, None]
        self.invalid = False

    def add_fixed(self) -> None:
        if self.addr[2] is None:
            self.addr[2] = b"MISSING_MAILBOX"
        if not self.addr[3]:
            self.addr[3] = b"MISSING_DOMAIN"
        self.add()

    def local_part(self, into: bytearray) -> int:
        into.clear()
        if self.lex.peek() == 0x22:
            ret = self.lex.quoted_string(into)
        else:
            ret = self.lex.loose_dot_atom(into)
        if ret < 0:
            return -1
        self.addr[2] = bytes(into)
        return ret

    def domain(self) -> int:
        out = bytearray()
        ret = self.lex.domain(out)
        if ret < 0:
            return -1
        self.addr[3] = bytes(out)
        return ret

    def route(self) -> int:
        lex, out = self.lex, bytearray()
        while True:
            if lex.pos >= lex.end:
                return 0
            if lex.data[lex.pos] != 0x40:
                break
            if out:
                out += b","
            out += b"@"
            ret = lex.domain(out)
            if ret <= 0:
                return ret
            while lex.skip_lwsp() > 0 and lex.data[lex.pos] == 0x2C:
                lex.pos += 1
        self.addr[1] = bytes(out)
        return 1

    def angle_addr(self) -> int:
        lex = self.lex
        lex.pos += 1  # the "<"
        if lex.skip_lwsp() <= 0:
            return -1
        if lex.data[lex.pos] == 0x40:
            if self.route() > 0 and lex.peek() == 0x3A:
                lex.pos += 1
            else:
                self.addr[1] = b"INVALID_ROUTE"
                if lex.pos >= lex.end:
                    return -1
            if lex.skip_lwsp() <= 0:
                return -1
        if lex.data[lex.pos] != 0x3E:  # "<>" has neither mailbox nor domain
            if self.local_part(bytearray()) <= 0:
                return -1
            if lex.peek() == 0x40 and self.domain() <= 0:
                return -1
        if lex.peek() != 0x3E:
            return -1
        lex.pos += 1
        return lex.skip_lwsp()

    def name_addr(self) -> int:
        name = bytearray()
        if self.lex.phrase(name) <= 0 or self.lex.peek() != 0x3C:
            return -1
        self.addr[0] = bytes(name) or None
        if self.angle_addr() < 0:
            self.addr[3] = b"SYNTAX_ERROR"
            self.invalid = True
        return 1 if self.lex.pos < self.lex.end else 0

    def addr_spec(self) -> int:
        lex = self.lex
        assert lex.last_comment is not None
        lex.last_comment.clear()
        quoted = lex.peek() == 0x22
        text = bytearray()
        ret = self.local_part(text)
        if ret <= 0:
            self.invalid = True
        ret2 = -2
        if ret != 0 and lex.peek() == 0x40:
            ret2 = self.domain()
            if ret2 <= 0:
                ret = ret2
        if lex.last_comment:
            self.addr[0] = bytes(lex.last_comment)
        elif ret2 == -2:
            # A lone "user" is a mailbox, but "user more words" is a display name.
            text += b" "
            mark = len(text)
            lex.phrase(text)
            if len(text) != mark:
                self.addr[2] = None
                self.addr[0] = bytes(text)
            elif not quoted:
                self.addr[3] = b""
            self.invalid = True
            ret = -1
        return ret

    def mailbox(self) -> int:
        start = self.lex.pos
        ret = self.name_addr()
        if ret < 0:
            self.lex.pos = start
            self.addr = [None, None, None, None]
            ret = self.addr_spec()
            if self.invalid and self.addr[0] is None and self.addr[2] is not None \
                    and self.addr[3] is None:
                self.addr[0], self.addr[2] = self.addr[2], None
        if ret < 0:
            self.invalid = True
        self.add_fixed()
        return ret

    def group(self) -> int:
        lex, name = self.lex, bytearray()
        if lex.phrase(name) <= 0 or lex.peek() != 0x3A:
            return -1
        lex.pos += 1
        ret = lex.skip_lwsp()
        self.addr[2] = bytes(name)
        self.add()
        if ret > 0 and lex.data[lex.pos] != 0x3B:
            while True:
                self.mailbox()  # a broken mailbox does not end the group
                if lex.peek() != 0x2C:
                    break
                lex.pos += 1
                if lex.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if lex.peek() != 0x3B:
                ret = -1
            else:
                lex.pos += 1
                ret = lex.skip_lwsp()
        self.add()  # the group's end marker: all four fields NIL
        return 0 if ret == 0 else 1

    def address(self) -> int:
        start = self.lex.pos
        ret = self.group()
        if ret < 0:
            self.lex.pos = start
            self.addr = [None, None, None, None]
            ret = self.mailbox()
        return ret

    def address_list(self) -> list[list[bytes | None]]:
        lex = self.lex
        if lex.skip_lwsp() <= 0:
            return []
        while True:
            if self.address() == 0:
                break
            if lex.peek() != 0x2C:
                break
            lex.pos += 1
            ret = lex.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self.add_fixed()  # ends with some garbage
                break
        return self.out


def parse_addresses(value: bytes) -> list[Address]:
    """Return the addresses of an address header as ENVELOPE address structures."""
    return [[text(part) for part in addr] for addr in _AddressParser(value).address_list()]


# -- ENVELOPE ---------------------------------------------------------------------------

# Header bytes that are not UTF-8 are kept as code points U+10FF80..U+10FFFF (private
# use): the JSON stays valid (PostgreSQL refuses lone surrogates) and raw() gives back the
# very bytes, so a broken 8-bit header goes out as Dovecot sends it.
_RAW_TO_PRIVATE = {0xDC00 + b: 0x10FF00 + b for b in range(0x80, 0x100)}
_PRIVATE_TO_RAW = {v: k for k, v in _RAW_TO_PRIVATE.items()}


def text(value: bytes | None) -> str | None:
    """Return header bytes as JSON-safe text: UTF-8, with stray bytes kept (see raw()).

    A NUL becomes U+FFFD, as in Dovecot (and PostgreSQL's jsonb refuses \\u0000).
    """
    if value is None:
        return None
    value = value.replace(b"\x00", "\ufffd".encode())
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("utf-8", "surrogateescape").translate(_RAW_TO_PRIVATE)


def raw(value: str) -> bytes:
    """Return the header bytes text() was given."""
    try:
        return value.encode("utf-8") if value.isascii() else \
            value.translate(_PRIVATE_TO_RAW).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that did not come from text()
        return value.encode("utf-8", "replace")


def build_envelope(fields: list[Field]) -> list:
    """Return the ENVELOPE (RFC 3501 section 7.4.2) of a header as a JSON-able list.

    [date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id]: strings
    are the raw field values (RFC 2047 words left encoded), address lists are lists of
    [name, adl, mailbox, host] or None. Sender and Reply-To default to From.
    """
    values: dict[str, bytes | None] = {}
    addresses: dict[str, list[Address]] = {}
    for field in fields:
        name = field_name(field)
        if name not in ENVELOPE_FIELDS:
            continue
        value = field.value if field.value is not None else b""
        if name in _ADDRESS_FIELDS:
            addresses.setdefault(name, []).extend(parse_addresses(value))
        else:
            values[name] = value
    env: list = []
    for name in ENVELOPE_FIELDS:
        if name in _ADDRESS_FIELDS:
            found = addresses.get(name) or None
            if found is None and name in ("sender", "reply-to"):
                found = addresses.get("from") or None
            env.append(found)
        else:
            env.append(text(values.get(name)))
    return env


def envelope_sexp(env: list) -> bytes:
    """Render an ENVELOPE list as IMAP syntax, e.g. b'("date" "subject" ((...)) ...)'."""
    date, subject, *address_lists, in_reply_to, message_id = env
    out = [nstring_nolf(date), human_string(subject)]
    out += [_address_list(addresses) for addresses in address_lists]
    out += [nstring_nolf(in_reply_to), nstring_nolf(message_id)]
    return b"(" + b" ".join(out) + b")"


def _address_list(addresses: list[Address] | None) -> bytes:
    if not addresses:
        return b"NIL"
    return b"(" + b"".join(
        b"(%s %s %s %s)" % (human_string(name), nstring(adl), nstring(mailbox), nstring(host))
        for name, adl, mailbox, host in addresses
    ) + b")"


# -- IMAP strings, written as Dovecot writes them ---------------------------------------

_MAX_ESCAPES = 4  # more quoted-specials than this and a literal is shorter
_HUMAN_SPACE = re.compile(rb"[ \t\r\n]+")


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


def string(value: str | bytes) -> bytes:
    """Return a quoted string, or a literal for CR, LF, 8-bit or many quoted-specials."""
    data = raw(value) if isinstance(value, str) else value
    if re.search(rb"[\r\n\x80-\xff]", data) or \
            data.count(b'"') + data.count(b"\\") > _MAX_ESCAPES:
        return _literal(data)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def nstring(value: str | bytes | None) -> bytes:
    """Return NIL for None, else string(value)."""
    return b"NIL" if value is None else string(value)


def nstring_nolf(value: str | None) -> bytes:
    """Return nstring(value) with line breaks dropped (a space kept between lines)."""
    if value is None or ("\r" not in value and "\n" not in value):
        return nstring(value)
    out = []
    for i, ch in enumerate(value):
        if ch not in "\r\n":
            out.append(ch)
        elif i + 1 < len(value) and value[i + 1] not in " \t\r\n":
            out.append(" ")
    return nstring("".join(out))


def human_string(value: str | None) -> bytes:
    """Return a display string (subject, name) with runs of white space made one space.

    As Dovecot does, a value that needed any change, or holds '"', '\\' or 8-bit
    characters, goes out as a literal.
    """
    if value is None:
        return b"NIL"
    data = raw(value).replace(b"\x00", b"\x80")
    cleaned = _HUMAN_SPACE.sub(b" ", data).strip(b" ")
    if cleaned == data and not re.search(rb'["\\\x80-\xff]', data):
        return b'"' + data + b'"'
    if not cleaned:
        return b'""'
    return _literal(cleaned)
