"""The FETCH grammar (RFC 3501 and RFC 9051 section 6.4.5): items, body sections, partials."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailcore.imap import encode
from mailcore.imap.lexer import MAX_NUMBER64, Reader
from mailcore.message.sequenceset import SequenceSet
from mailcore.sessions import BadSyntax

FETCH_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
SIMPLE_FETCH_ITEMS = frozenset({
    "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "RFC822.SIZE",
    "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ",
})
SECTION_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})

_FETCH_NAME = re.compile(rb"[A-Za-z0-9.]+")
_SECTION = re.compile(rb"[A-Za-z0-9.]*")
_PARTIAL = re.compile(rb"<([0-9]{1,20})\.([0-9]{1,20})>")
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext


@dataclass(frozen=True)
class Section:
    """A body section: part path, then HEADER, HEADER.FIELDS[.NOT] (fields), TEXT or MIME."""

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join([str(n) for n in self.part] + ([self.text] if self.text else []))
        if self.fields:
            spec += " (" + " ".join(encode.astring(f).decode() for f in self.fields) + ")"
        return spec


@dataclass(frozen=True)
class FetchItem:
    """One fetch attribute: BODY[...] and BINARY[...] carry a section, maybe a partial."""

    name: str  # "FLAGS", "RFC822.SIZE", "BODY", "BODYSTRUCTURE", "BINARY", "BINARY.SIZE"...
    section: Section | None = None  # None for bare BODY (the body structure)
    partial: tuple[int, int] | None = None  # (origin, octet count)
    peek: bool = False  # BODY.PEEK / BINARY.PEEK: do not set \Seen

    def label(self) -> str:
        """Return the item's name in a FETCH response, e.g. "BODY[1.MIME]<0>"."""
        if self.section is None:
            return self.name
        origin = f"<{self.partial[0]}>" if self.partial else ""
        return f"{self.name}[{self.section}]{origin}"


@dataclass(frozen=True)
class Fetch:
    sequence: SequenceSet
    items: tuple[FetchItem, ...]  # macros (ALL, FAST, FULL) expanded
    changed_since: int | None = None  # (CHANGEDSINCE n), RFC 7162
    vanished: bool = False  # (VANISHED), UID FETCH with QRESYNC only


def parse_fetch(r: Reader, uid: bool) -> Fetch:
    """Read what follows "FETCH": sequence set, items or a macro, and modifiers."""
    # RFC 3501 section 6.4.5, RFC 9051 section 6.4.5, RFC 3516, RFC 7162 section 3.1.4.
    r.space()
    sequence = r.sequence_set()
    r.space()
    match = _FETCH_NAME.match(r.data, r.pos)
    macro = FETCH_MACROS.get(match.group().upper().decode()) if match else None
    if macro is not None and not r.data[match.end():match.end() + 1] == b"[":
        r.pos = match.end()
        items = [FetchItem(name) for name in macro]
    elif r.peek(b"("):
        items = r.paren_list(lambda: _fetch_item(r), empty=False)
    else:
        items = [_fetch_item(r)]
    changed_since, vanished = None, False
    if r.take(b" "):
        r.open()
        while True:
            modifier = r.keyword()
            if modifier == "CHANGEDSINCE" and changed_since is None:
                r.space()
                changed_since = r.number(MAX_NUMBER64)
            elif modifier == "VANISHED" and not vanished:
                vanished = True
            else:
                raise BadSyntax("unknown or repeated FETCH modifier")
            if not r.take(b" "):
                break
        r.close()
    return Fetch(sequence, tuple(items), changed_since, vanished)


def fetch_item(r: Reader) -> FetchItem:
    """Read one fetch-att (also what NOTIFY's MessageNew and UPDATE name, RFC 5465)."""
    return _fetch_item(r)


def _fetch_item(r: Reader) -> FetchItem:
    match = _FETCH_NAME.match(r.data, r.pos)
    if match is None:
        raise BadSyntax("expected a fetch item")
    r.pos = match.end()
    name = match.group().decode("ascii").upper()
    if not r.peek(b"["):
        if name not in SIMPLE_FETCH_ITEMS:
            raise BadSyntax("unknown fetch item")
        return FetchItem(name)
    peek = name.endswith(".PEEK")
    base = name.removesuffix(".PEEK")
    if base not in ("BODY", "BINARY") and name != "BINARY.SIZE":
        raise BadSyntax("unknown fetch item")
    section = _section(r, binary=base != "BODY")
    partial = None
    match = _PARTIAL.match(r.data, r.pos)
    if match is not None and name != "BINARY.SIZE":
        r.pos = match.end()
        origin, length = int(match.group(1)), int(match.group(2))
        if length == 0 or origin > MAX_NUMBER64 or length > MAX_NUMBER64:
            raise BadSyntax("bad partial range")
        partial = (origin, length)
    return FetchItem(base, section, partial, peek)


def _section(r: Reader, *, binary: bool) -> Section:
    r.expect(b"[")
    match = _SECTION.match(r.data, r.pos)
    assert match is not None
    r.pos = match.end()
    words = match.group().decode("ascii").upper().split(".") if match.group() else []
    part: list[int] = []
    while words and words[0].isdigit():
        if words[0].startswith("0") or len(words[0]) > 10:
            raise BadSyntax("bad section part number")
        part.append(int(words.pop(0)))
    text = ".".join(words) or None
    fields: list[str] = []
    if text is not None and (binary or text not in SECTION_TEXTS
                             or (text == "MIME" and not part)):
        raise BadSyntax("bad section")
    if "" in words:
        raise BadSyntax("bad section")
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        r.space()
        fields = r.paren_list(lambda: _field_name(r), empty=False)
    r.expect(b"]")
    return Section(tuple(part), text, tuple(fields))


def _field_name(r: Reader) -> str:
    name = r.astring()
    if not _FIELD_NAME.fullmatch(name):
        raise BadSyntax("bad header field name")
    return name
