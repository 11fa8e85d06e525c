"""Header blocks: reading fields, the RFC 5322 / RFC 2045 token rules, MIME parameters.

Everything here follows what Dovecot (2.3) reads, byte for byte where it can, because
IMAP clients are tested against its answers: a line without a colon is a field too,
folded lines are joined, RFC 2231 parameter pieces are joined but not decoded. Header
bytes become JSON-safe text with text() and come back with raw().
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



# -- Header bytes as JSON-safe text ----------------------------------------------------

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
