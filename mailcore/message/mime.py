"""MIME structure: a raw message read once into a tree of parts with byte offsets.

parse_structure() reads a raw message once (at delivery) into a JSON-able tree that the
store keeps per message; IMAP renders BODYSTRUCTURE / BODY from it
(mailcore.imap.bodystructure), and SectionReader and find_part() slice BODY[section] and
webmail's parts out of the raw message by the offsets it records, without parsing again.
The parser never raises: broken MIME degrades the way Dovecot (2.3) degrades it, so the
rendering matches Dovecot's byte for byte (tests/test_message_mime.py compares the two
and lists the few deviations). Sizes are raw octets: the store keeps CRLF.

A part is a dict:

    kind           "multipart", "message" (message/rfc822 with an encapsulated message
                   in "message") or "single"
    type, subtype  as written in Content-Type (case kept); None without a Content-Type
                   that counts (RFC 2045 section 5.2: then text/plain)
    params         [[name, value], ...] Content-Type parameters, RFC 2231 pieces joined
                   but not decoded ("name*" -> "utf-8''%E2%82%AC.txt")
    id, description, encoding, md5, location     raw field values or None
                   (header bytes that are not UTF-8 are kept, see header.text())
    disposition, disposition_params, language    Content-Disposition / -Language
    header, body   [start, end) byte offsets of the part's header and body in raw
    size, lines    body octets and line count (RFC 3501 body-fld-octets / -lines)
                   A multipart or message nested past MAX_NESTING is a "single"
                   application/octet-stream part, as in Dovecot.
    parts          sub-parts of a multipart
    message        the encapsulated message of a message/rfc822 part, a part dict with
                   an extra "envelope" (see mailcore.message.envelope.build_envelope)
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from mailcore.message.envelope import build_envelope
from mailcore.message.header import (
    Field,
    Lexer,
    field_name,
    field_spans,
    parameters,
    read_header,
    text,
)

__all__ = ["find_part", "header_end", "parse_structure", "section_bytes", "SectionReader"]

# Dovecot's limits; past them a multipart or message/rfc822 part is not descended into
# but shown as an opaque application/octet-stream leaf.
MAX_NESTING = 100
MAX_PARTS = 10000

_MULTIPART, _RFC822, _DIGEST, _OPAQUE = 1, 2, 4, 8


def parse_structure(raw: bytes) -> dict:
    """Return the MIME structure of a raw message as a JSON-serialisable dict (see above)."""
    root = _Parser(raw).parse()
    return _to_json(root)


# -- Parsing ----------------------------------------------------------------------------

class _Part:
    """A part while parsing, with Dovecot's size accounting (sizes, not end offsets)."""

    __slots__ = ("parent", "pos", "hsize", "hlines", "bsize", "blines", "flags", "is_mime",
                 "children", "fields", "depth")

    def __init__(self, parent: _Part | None, pos: int) -> None:
        self.parent = parent
        self.pos = pos  # where the header starts
        self.hsize = self.hlines = self.bsize = self.blines = 0
        self.flags = 0
        self.is_mime = False
        self.children: list[_Part] = []
        self.fields: list[Field] = []
        self.depth = 0 if parent is None else parent.depth + 1


class _Boundary:
    __slots__ = ("text", "part", "closing")

    def __init__(self, text: bytes, part: _Part) -> None:
        self.text = text
        self.part = part
        self.closing = False  # the line was "--boundary--"


class _Parser:
    """Dovecot's message parser over a whole buffer (RFC 2045, RFC 2046 section 5.1).

    Bytes are attributed to the current part as they are read; a part's sizes are added
    to its parent when it ends, so every part covers one contiguous range of raw.
    """

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.boundaries: list[_Boundary] = []  # innermost last
        self.count = 1

    def parse(self) -> _Part:
        raw, n = self.raw, len(self.raw)
        root = part = _Part(None, 0)
        pos = self._header(part, 0)
        while True:
            # The body of a message/rfc822 part is a message: read its header.
            while part.flags & _RFC822 and not part.children:
                part = self._append(part)
                pos = self._header(part, pos)
            found = self._next_boundary(pos)
            if found is None:
                self._add_body(part, pos, n)
                break
            boundary, stop, line = found
            self._add_body(part, pos, stop)
            while part is not boundary.part:
                part = self._close(part)
            # The boundary line, whatever follows it on the line, belongs to the multipart.
            eol = raw.find(b"\n", line)
            pos = n if eol < 0 else eol + 1
            self._add_body(part, stop, pos)
            index = self.boundaries.index(boundary)
            del self.boundaries[index + (0 if boundary.closing else 1):]
            if eol < 0:
                break
            if self.boundaries and self.boundaries[-1].part is part:
                part = self._append(part)
                pos = self._header(part, pos, is_mime=True)
            # else: the epilogue, read as the multipart's body up to an outer boundary
        while part.parent is not None:
            part = self._close(part)
        return root

    def _may_descend(self, part: _Part) -> bool:
        return part.depth + 1 < MAX_NESTING and self.count < MAX_PARTS

    def _append(self, parent: _Part) -> _Part:
        child = _Part(parent, parent.pos + parent.hsize + parent.bsize)
        parent.children.append(child)
        self.count += 1
        return child

    def _add_body(self, part: _Part, start: int, end: int) -> None:
        if end > start:
            part.bsize += end - start
            part.blines += self.raw.count(b"\n", start, end)

    def _close(self, part: _Part) -> _Part:
        parent = part.parent
        assert parent is not None
        parent.bsize += part.hsize + part.bsize
        parent.blines += part.hlines + part.blines
        return parent

    def _boundary_at(self, pos: int) -> _Boundary | None:
        """Return the boundary a line starting at pos is, preferring the longest match.

        Only the start of the line has to match (RFC 2046 section 5.1.1); the innermost
        boundary wins a tie.
        """
        raw = self.raw
        if not self.boundaries or not raw.startswith(b"--", pos):
            return None
        eol = raw.find(b"\n", pos)
        if eol < 0:
            eol = len(raw)
        elif eol > pos and raw[eol - 1] == 0x0D:
            eol -= 1
        line = raw[pos + 2:eol]
        best = None
        for boundary in reversed(self.boundaries):
            size = len(boundary.text)
            if line.startswith(boundary.text) and (best is None or len(best.text) < size):
                best = boundary
                if size == len(line) or (size == len(line) - 2 and line.endswith(b"--")):
                    break
        if best is not None:
            size = len(best.text)
            best.closing = line[size:size + 2] == b"--"
        return best

    def _next_boundary(self, pos: int) -> tuple[_Boundary, int, int] | None:
        """Find the next boundary line from pos (a line start).

        Return (boundary, where the part's body stops, where the boundary line starts):
        the line break before a boundary belongs to the boundary (RFC 2046 5.1.1).
        """
        if not self.boundaries:
            return None
        raw = self.raw
        boundary = self._boundary_at(pos)
        if boundary is not None:
            return boundary, pos, pos
        lf = raw.find(b"\n--", pos)
        while lf >= 0:
            boundary = self._boundary_at(lf + 1)
            if boundary is not None:
                stop = lf - 1 if lf > pos and raw[lf - 1] == 0x0D else lf
                return boundary, stop, lf + 1
            lf = raw.find(b"\n--", lf + 1)
        return None

    def _header(self, part: _Part, pos: int, is_mime: bool = False) -> int:
        """Read a part's header and set its flags; return where its body starts."""
        raw = self.raw
        header = read_header(raw, pos, len(raw),
                             self._boundary_at if self.boundaries else None)
        part.fields = header.fields
        end = header.end
        ctype = boundary = None
        for field in header.fields:
            name = field_name(field)
            if name == "mime-version":
                is_mime = True
            elif name == "content-type":
                is_mime = True
                if ctype is None:
                    ctype, boundary = _content_type_flags(field.value or b"")
        flags = 0
        if ctype is not None:
            lower = ctype.lower()
            if lower == b"message/rfc822":
                flags = _RFC822
            elif lower.startswith(b"multipart/"):
                flags = _MULTIPART | (_DIGEST if lower == b"multipart/digest" else 0)
        elif part.parent is not None and part.parent.flags & _DIGEST:
            flags = _RFC822  # the default type in a digest (RFC 2046 section 5.1.5)
        if flags & _MULTIPART and boundary is not None and header.blank_line:
            if self._may_descend(part):
                self.boundaries.append(_Boundary(boundary, part))
            else:
                flags = _OPAQUE
        if flags & _RFC822 and not self._may_descend(part):
            flags = _OPAQUE
        part.flags = flags
        part.is_mime = is_mime
        if header.blank_line:
            # An enclosing boundary right after the blank line cuts the header short too.
            found = self._boundary_at(header.end)
            if found is not None and found.part is not part:
                end -= 2 if raw[end - 2:end] == b"\r\n" else 1
        part.hsize = end - pos
        part.hlines = raw.count(b"\n", pos, end)
        if header.next > end and part.parent is not None:
            # A boundary cut the header short: the line break before it is the parent's.
            part.parent.bsize += header.next - end
            part.parent.blines += 1
        return header.next


def _content_type_flags(value: bytes) -> tuple[bytes, bytes | None]:
    """Return the "type/subtype" text Dovecot keeps and the boundary parameter, if any."""
    lexer = Lexer(value)
    lexer.skip_lwsp()
    out = bytearray()
    ret = lexer.content_type(out)
    boundary = None
    if ret >= 0 and bytes(out).lower().startswith(b"multipart/"):
        for key, param in parameters(lexer):
            if key.lower() == b"boundary":
                boundary = param
                break
    return bytes(out), boundary


# -- Part data (Dovecot's message-part-data) ----------------------------------------------

def _part_data(fields: list[Field]) -> dict:
    """Return a part's Content-* data as Dovecot reads it: mostly the first field wins."""
    data: dict = {
        "type": None, "subtype": None, "params": [], "id": None, "description": None,
        "encoding": None, "md5": None, "disposition": None, "disposition_params": [],
        "language": None, "location": None,
    }
    seen_type = False
    disposition_params: list | None = None
    for field in fields:
        name = field_name(field)
        if not name.startswith("content-"):
            continue
        value = field.value if field.value is not None else b""
        key = name[8:]
        if key in ("id", "description", "md5", "location") and data[key] is None:
            data[key] = text(value)
        elif key == "type" and not seen_type:
            seen_type = True
            lexer = Lexer(value)
            lexer.skip_lwsp()
            out = bytearray()
            ret = lexer.content_type(out)
            ctype, _, subtype = bytes(out).partition(b"/")
            data["type"], data["subtype"] = text(ctype), text(subtype)
            if ret >= 0:
                data["params"] = _pairs(parameters(lexer))
        elif key == "transfer-encoding" and data["encoding"] is None:
            lexer = Lexer(value)
            lexer.skip_lwsp()
            out = bytearray()
            if lexer.token(out) >= 0 and lexer.skip_lwsp() == 0 and out:
                data["encoding"] = text(bytes(out))
        elif key == "disposition" and disposition_params is None:
            lexer = Lexer(value)
            lexer.skip_lwsp()
            out = bytearray()
            if lexer.token(out) >= 0:
                data["disposition"] = text(bytes(out))
                data["disposition_params"] = _pairs(parameters(lexer))
                disposition_params = data["disposition_params"] or None
        elif key == "language" and data["language"] is None:
            data["language"] = _languages(value)
    return data


def _pairs(params: list[tuple[bytes, bytes]]) -> list[list[str | None]]:
    return [[text(key), text(value)] for key, value in params]


def _languages(value: bytes) -> list[str] | None:
    """Return Content-Language tags (RFC 3282), stopping at the first malformed one."""
    lexer = Lexer(value)
    lexer.skip_lwsp()
    tags = []
    while True:
        out = bytearray()
        if lexer.atom(out) < 0:
            break
        tags.append(text(bytes(out)))
        if lexer.peek() != 0x2C:
            break
        lexer.pos += 1
        lexer.skip_lwsp()
    return tags or None


def _to_json(part: _Part) -> dict:
    """Convert a parsed part (and its children) to the JSON shape described above."""
    # Without MIME-Version or Content-Type, Content-* fields do not count (RFC 2045 4).
    data = _part_data(part.fields if part.is_mime else [])
    if part.flags & _OPAQUE:
        data["type"], data["subtype"] = "application", "octet-stream"
    body_start = part.pos + part.hsize
    node = {
        "kind": "single", **data,
        "header": [part.pos, body_start],
        "body": [body_start, body_start + part.bsize],
        "size": part.bsize,
        "lines": part.blines,
    }
    if part.flags & _MULTIPART:
        node["kind"] = "multipart"
        node["parts"] = [_to_json(child) for child in part.children]
    elif part.flags & _RFC822 and part.children:
        child = part.children[0]
        node["kind"] = "message"
        node["message"] = _to_json(child)
        node["message"]["envelope"] = build_envelope(child.fields)
    return node


# -- BODY[section] (RFC 3501 section 6.4.5, RFC 9051 section 6.4.5) ----------------------

_SECTION = re.compile(
    r"(?P<part>[1-9][0-9]*(?:\.[1-9][0-9]*)*)?"
    r"(?:(?(part)\.)(?P<text>MIME|TEXT|HEADER(?:\.FIELDS(?:\.NOT)?[ ]+\((?P<names>.*)\))?))?",
    re.IGNORECASE | re.DOTALL,
)
_FIELD_NAME = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')


def section_bytes(raw: bytes, structure: dict, section_spec: str) -> bytes:
    """Return the bytes of BODY[section_spec] ("", "TEXT", "1.2.MIME", "HEADER.FIELDS (A B)").

    A part that does not exist gives b"" (as Dovecot answers); a malformed section
    raises ValueError. Part 1 of a single-part message is its body; HEADER, TEXT and
    HEADER.FIELDS of a part refer to the message a message/rfc822 part encapsulates.
    """
    return SectionReader(section_spec)(raw, structure)


class SectionReader:
    """One BODY[section], parsed once (for a FETCH of many messages), read from each.

    Sections of the message itself ("", HEADER, HEADER.FIELDS, TEXT) need no body
    structure: the header ends where the structure parser ends the top header (the
    same read_header, without boundaries). Part sections need the structure.
    """

    __slots__ = ("part", "spec", "wanted", "keep", "_fields", "_kept_fields")

    def __init__(self, section_spec: str) -> None:
        match = _SECTION.fullmatch(section_spec.strip())
        if match is None:
            raise ValueError(f"bad section: {section_spec!r}")
        self.spec = (match["text"] or "").split(" ", 1)[0].upper()
        self.part = ([int(n) for n in match["part"].split(".")]
                     if match["part"] is not None else None)
        if self.part is None and self.spec == "MIME":
            raise ValueError("MIME needs a part number")
        self.wanted: set[str] = set()
        self.keep = self.spec == "HEADER.FIELDS"
        if self.spec.startswith("HEADER.FIELDS"):
            self.wanted = {(quoted or atom).replace('\\"', '"').upper()
                           for quoted, atom in _FIELD_NAME.findall(match["names"] or "")} - {""}
            if not self.wanted:
                raise ValueError("HEADER.FIELDS needs at least one field name")
        self._fields = _fields_pattern(self.wanted) if self.wanted else None
        self._kept_fields = (_kept_fields_pattern(self.wanted)
                             if self.keep and self._fields is not None else None)

    @property
    def needs_structure(self) -> bool:
        return self.part is not None

    @property
    def of_header(self) -> bool:
        """Tell whether the message's header block alone answers this section."""
        return self.part is None and self.spec.startswith("HEADER")

    def from_headers(self, blocks: Iterable[bytes]) -> list[bytes]:
        """Return [from_header(block) for block in blocks], HEADER.FIELDS by one
        comprehension (a FETCH of 50,000 messages' headers would pay a call for each)."""
        fields = self._kept_fields
        if fields is None:
            return [self.from_header(block) for block in blocks]
        chain = itertools.chain.from_iterable
        return [b"".join(chain(fields.findall(b"\n" + block))) + b"\r\n"
                if b"\xdf" not in block else self.from_header(block) for block in blocks]

    def from_header(self, block: bytes) -> bytes:
        """Return this section (see of_header) from the message's header block.

        block is the raw message up to the end of its header (header_end()): what
        __call__ returns for the whole message, found by one regular expression instead
        of a Python loop over the lines (a FETCH of 50,000 messages' headers).
        """
        if self.spec == "HEADER":
            return block
        pattern = self._fields
        if pattern is None or b"\xdf" in block:
            # "ß" upper-cases to "SS": only field_spans() compares such names as Dovecot.
            fields, end, blank_line = field_spans(block)
            return self._message(block, 0, end, end, True, (fields, end, blank_line))
        if self.keep:  # the message's own HEADER.FIELDS always ends with a blank line
            # (field, its line break) pairs of the fields, found after a "\n" each.
            pairs = self._kept_fields.findall(b"\n" + block)
            return b"".join(itertools.chain.from_iterable(pairs)) + b"\r\n"
        last = block.rfind(b"\n", 0, len(block) - 1) + 1
        blank_line = block[last:] in (b"\n", b"\r\n")
        out, pos = [], 0
        for match in pattern.finditer(block):
            out.append(block[pos:match.start()])
            pos = match.end()
        out.append(block[pos:last if blank_line else len(block)])
        if blank_line:
            out.append(b"\r\n")
        return b"".join(out)

    def __call__(self, raw: bytes, structure: dict | None) -> bytes:
        spec = self.spec
        if self.part is None:
            if spec == "":
                return raw
            if structure is None:
                header = field_spans(raw)
                return self._message(raw, 0, header[1], len(raw), True, header)
            return self._message(raw, *structure["header"], structure["body"][1], True)
        if structure is None:
            raise ValueError("a part section needs the body structure")
        part = find_part(structure, self.part)
        if part is None:
            return b""
        if spec == "":
            return _slice(raw, part["body"])
        if spec == "MIME":
            return _slice(raw, part["header"])
        if part["kind"] != "message":
            return b""  # HEADER and TEXT exist only for message/rfc822 parts
        message = part["message"]
        return self._message(raw, *message["header"], message["body"][1], False)

    def _message(self, raw: bytes, start: int, end: int, body_end: int, top: bool,
                 header: tuple[list[tuple[str, int, int]], int, bool] | None = None) -> bytes:
        """Return this section of the message whose header is raw[start:end]."""
        if self.spec == "TEXT":
            return raw[end:body_end]
        if self.spec == "HEADER":
            return raw[start:end]
        fields, _, blank_line = header or field_spans(raw, start, end)
        wanted, keep = self.wanted, self.keep
        out = bytearray()
        for name, field_start, field_end in fields:
            if (name in wanted) == keep:
                out += raw[field_start:field_end]
                if field_end == end and not top and end > start and raw[end - 1] != 0x0A:
                    # The last line of a header cut short by a boundary: its line break
                    # went to the boundary, give it back (as Dovecot reads on).
                    out += raw[end:end + 2] if raw.startswith(b"\r\n", end) else b""
        # The header's blank line ends the result; the message's own HEADER.FIELDS always
        # ends with one, as Dovecot's. A part's blank line may have gone to a boundary right
        # after it (RFC 2046 5.1.1): still there. Deviation: for a part header cut short by
        # a boundary, Dovecot goes on reading the lines after it up to a blank line; we
        # stop at the part's end.
        lost_blank_line = (end == start or raw[end - 1] == 0x0A) and raw[end:end + 1] in b"\r\n"
        if blank_line or (keep and top) or (not top and lost_blank_line
                                                    and end < len(raw)):
            out += b"\r\n"
        return bytes(out)


def _fields_pattern(wanted: set[str]) -> re.Pattern[bytes] | None:
    """Return a pattern matching whole fields (with their folded lines) named as wanted.

    A field starts at a line start with no white space before its name (as field_spans()
    reads it, every such line inside a header starts a field); its name is compared as
    field_spans() compares it, ASCII case-insensitively, white space before the colon
    allowed. None for a name that is not ASCII (field_spans() then decides).
    """
    if not all(name.isascii() for name in wanted):
        return None
    names = b"|".join(re.escape(name.encode("ascii")) for name in sorted(wanted))
    return re.compile(rb"^(?:" + names + rb")[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*\n?",
                      re.IGNORECASE | re.MULTILINE)


def _kept_fields_pattern(wanted: set[str]) -> re.Pattern[bytes]:
    """Return _fields_pattern(wanted) for text that starts with "\n": the same fields found
    as (field without its last line break, that line break or b"") pairs.

    Starting with a literal "\n" rather than ^ lets the regular expression engine skip to
    each line break instead of trying every position: HEADER.FIELDS of 50,000 messages'
    header blocks takes 40% less time. The line break is matched by a look-ahead, so it
    also begins the next field.
    """
    names = b"|".join(re.escape(name.encode("ascii")) for name in sorted(wanted))
    return re.compile(rb"\n((?:" + names + rb")[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*)(?=(\n?))",
                      re.IGNORECASE)


def header_end(raw: bytes) -> int:
    """Return where the message's header ends: past its blank line, or at the end of raw.

    The same end SectionReader finds for BODY[HEADER] (field_spans(), as parse_structure()
    ends the top header).
    """
    return field_spans(raw)[1]


def _slice(raw: bytes, span: list[int]) -> bytes:
    return raw[span[0]:span[1]]


def find_part(structure: dict, numbers: list[int]) -> dict | None:
    """Return the part a section path (e.g. [2, 1]) names, or None, as Dovecot finds it.

    Inside a message/rfc822 part the numbers go on in its message; a part that is not
    a multipart is its own part 1 (so "1.1" of a text part is that part).
    """
    part: dict | None = structure
    for i, number in enumerate(numbers):
        assert part is not None
        more = i + 1 < len(numbers)
        if part["kind"] == "multipart":
            children = part["parts"]
            part = children[number - 1] if number <= len(children) else None
        elif number != 1 or (more and part["kind"] != "message"):
            part = None
        if part is None:
            return None
        if more and part["kind"] == "message":
            part = part["message"]
    return part
