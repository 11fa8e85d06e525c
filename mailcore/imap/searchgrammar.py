"""The SEARCH grammar (RFC 3501 section 6.4.4, RFC 9051 section 6.4.4): a search program.

It reads what follows SEARCH into a Search: the key tree (mailcore.message.searchkeys,
which the store evaluates), the charset and the ESEARCH return options.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass

from mailcore.imap.fetchitems import FetchItem, fetch_item
from mailcore.imap.lexer import MAX_NUMBER64, Reader
from mailcore.message.searchkeys import (
    AgeKey,
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NotKey,
    OrKey,
    SearchKey,
    SetKey,
    SizeKey,
    TextKey,
)
from mailcore.sessions import BadSyntax, Refused

# NOT, OR and groups inside one another. Dovecot answers 100 levels of each; the store
# evaluates any tree this deep (mailcore.store.search), in SQL or in Python.
MAX_NESTING = 100
# RFC 4731, RFC 5182; CONTEXT, UPDATE and PARTIAL: CONTEXT=SEARCH (RFC 5267 section 4).
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE",
                            "PARTIAL"})


class BadCharset(Refused):
    """The client asked for a charset the server cannot search in (NO [BADCHARSET])."""

    def __init__(self, charset: str) -> None:
        super().__init__("[BADCHARSET (US-ASCII UTF-8)] Unsupported charset")
        self.charset = charset
        self.tag: str | None = None  # set by parse_command, to answer "tag NO ..."
        self.verb: str | None = None


@dataclass(frozen=True)
class Search:
    """A SEARCH command's program: the key tree, its charset and ESEARCH return options."""

    key: SearchKey
    charset: str | None = None
    return_options: frozenset[str] | None = None  # None: answer with untagged SEARCH
    partial: tuple[int, int] | None = None  # RETURN (PARTIAL low:high), RFC 5267 section 4.4
    update_items: tuple[FetchItem, ...] = ()  # RETURN (UPDATE (fetch-att ...)), RFC 5465 7

    @property
    def uses_modseq(self) -> bool:
        """Tell whether a MODSEQ key occurs, so the reply must carry (MODSEQ n)."""
        return _has_modseq(self.key)


def _has_modseq(key: SearchKey) -> bool:
    if isinstance(key, ModSeqKey):
        return True
    if isinstance(key, NotKey):
        return _has_modseq(key.key)
    if isinstance(key, OrKey):
        return _has_modseq(key.left) or _has_modseq(key.right)
    if isinstance(key, AndKey):
        return any(_has_modseq(k) for k in key.keys)
    return False


_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True), "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True),
    "RECENT": ("\\Recent", True), "OLD": ("\\Recent", False),
    "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False), "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = {"BCC", "CC", "FROM", "SUBJECT", "TO"}
_DATE_KEYS = {
    "BEFORE": ("INTERNAL", "BEFORE"), "ON": ("INTERNAL", "ON"), "SINCE": ("INTERNAL", "SINCE"),
    "SENTBEFORE": ("SENT", "BEFORE"), "SENTON": ("SENT", "ON"), "SENTSINCE": ("SENT", "SINCE"),
}


def parse_search(reader: Reader) -> Search:
    """Read what follows "SEARCH": [SP RETURN (...)] [SP CHARSET name] 1*(SP search-key)."""
    return_options = partial = None
    update_items: tuple[FetchItem, ...] = ()
    reader.space()
    if reader.take_word(b"RETURN"):
        reader.space()
        return_options, partial, update_items = parse_return_options(reader, "SEARCH")
        reader.space()
    charset = None
    if reader.take_word(b"CHARSET"):
        reader.space()
        charset = reader.astring().upper()
        _check_charset(charset)
        reader.space()
    return Search(parse_keys(reader, charset), charset, return_options, partial, update_items)


def parse_return_options(reader: Reader, verb: str) -> tuple[
        frozenset[str], tuple[int, int] | None, tuple[FetchItem, ...]]:
    """Read SEARCH's or SORT's "(" return options ")", with PARTIAL's range and UPDATE's
    fetch attributes if given.

    An empty list means ALL (RFC 4731 section 3.1). RFC 5267 section 4.4: a PARTIAL range
    is two non-zero numbers in either order, and one command has one PARTIAL or one ALL
    at most. RFC 5465 section 7: UPDATE may name what to fetch of new messages joining.
    """
    partial = None
    update_items: list[FetchItem] = []

    def option() -> str:
        nonlocal partial
        name = reader.keyword()
        if name not in RETURN_OPTIONS:
            raise BadSyntax(f"unknown {verb} return option")
        if name == "PARTIAL":
            reader.space()
            low = reader.nz_number()
            reader.expect(b":", "a range")
            high = reader.nz_number()
            partial = (min(low, high), max(low, high))
        elif name == "UPDATE" and reader.peek(b" ("):
            reader.space()
            update_items.extend(reader.paren_list(lambda: fetch_item(reader), empty=False))
        return name

    options = reader.paren_list(option)
    if options.count("PARTIAL") + options.count("ALL") > 1:
        raise BadSyntax("one PARTIAL or ALL return option at most")
    return frozenset(options or ["ALL"]), partial, tuple(update_items)


def parse_keys(reader: Reader, charset: str | None) -> SearchKey:
    """Read 1*(SP search-key) to the end of the command (the SP before the first read)."""
    grammar = _Grammar(reader, charset or "UTF-8")
    keys = [grammar.key()]
    while reader.take(b" "):
        keys.append(grammar.key())
    reader.end()
    return keys[0] if len(keys) == 1 else AndKey(tuple(keys))


def parse_charset(reader: Reader) -> str:
    """Read SP charset SP (RFC 5256's mandatory one); check it can be searched in."""
    reader.space()
    charset = reader.astring().upper()
    reader.space()
    _check_charset(charset)
    return charset


def _check_charset(charset: str) -> None:
    try:
        info = codecs.lookup(charset)
    except LookupError:
        raise BadCharset(charset) from None
    if not getattr(info, "_is_text_encoding", True):  # base64, rot13, zlib...
        raise BadCharset(charset)


class _Grammar:
    def __init__(self, reader: Reader, charset: str) -> None:
        self.reader = reader
        # Deviation: without CHARSET, strings are read as UTF-8 (a superset of US-ASCII),
        # because many clients send UTF-8 without announcing it.
        self.charset = charset
        self.nesting = 0

    def text(self) -> str:
        raw = self.reader.astring_bytes()
        try:
            return raw.decode(self.charset)
        except (UnicodeDecodeError, LookupError):
            raise BadSyntax("search string not valid in its charset") from None

    def key(self) -> SearchKey:
        r = self.reader
        if r.peek(b"(") or r.peek(b"$") or r.peek(b"*") or r.data[r.pos:r.pos + 1].isdigit():
            return self._nested(self._group) if r.peek(b"(") else SetKey(r.sequence_set())
        name = r.keyword()
        if name in _FLAG_KEYS:
            return FlagKey(*_FLAG_KEYS[name])
        if name == "ALL":
            return AllKey()
        if name == "NEW":
            return AndKey((FlagKey("\\Recent"), FlagKey("\\Seen", False)))
        parse = _ARGUMENT_KEYS.get(name)
        if parse is None:
            raise BadSyntax("unknown search key")
        r.space()
        return parse(self, name)

    def _nested(self, parse: Callable[[], SearchKey]) -> SearchKey:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise BadSyntax("search program too deeply nested")
        try:
            return parse()
        finally:
            self.nesting -= 1

    def _group(self) -> SearchKey:
        # Not Reader.paren_list: its depth limit is for data lists (MAX_DEPTH); groups count
        # towards MAX_NESTING with NOT and OR, so 100 levels of each parse, as in Dovecot.
        r = self.reader
        r.expect(b"(")
        keys = [self.key()]
        while r.take(b" "):
            keys.append(self.key())
        r.expect(b")")
        return keys[0] if len(keys) == 1 else AndKey(tuple(keys))

    def _not(self, name: str) -> SearchKey:
        return NotKey(self._nested(self.key))

    def _or(self, name: str) -> SearchKey:
        left = self._nested(self.key)
        self.reader.space()
        return OrKey(left, self._nested(self.key))

    def _header(self, name: str) -> SearchKey:
        return HeaderKey(name.lower(), self.text())

    def _header_field(self, name: str) -> SearchKey:
        field = self.reader.astring()
        self.reader.space()
        return HeaderKey(field.lower(), self.text())

    def _text(self, name: str) -> SearchKey:
        return TextKey(name, self.text())

    def _keyword(self, name: str) -> SearchKey:
        return FlagKey(self.reader.atom(), name == "KEYWORD")

    def _date(self, name: str) -> SearchKey:
        return DateKey(*_DATE_KEYS[name], self.reader.date())

    def _size(self, name: str) -> SearchKey:
        return SizeKey(name, self.reader.number(MAX_NUMBER64))

    def _age(self, name: str) -> SearchKey:
        return AgeKey(name, self.reader.nz_number())

    def _uid(self, name: str) -> SearchKey:
        return SetKey(self.reader.sequence_set(), uid=True)

    def _modseq(self, name: str) -> SearchKey:
        r = self.reader
        entry = entry_type = None
        if r.peek(b'"'):
            entry = r.string()
            if not entry.lower().startswith("/flags/") or len(entry) == 7:
                raise BadSyntax("bad MODSEQ entry name")
            r.space()
            entry_type = r.keyword()
            if entry_type not in ("PRIV", "SHARED", "ALL"):
                raise BadSyntax("bad MODSEQ entry type")
            r.space()
        return ModSeqKey(r.number(MAX_NUMBER64), entry, entry_type)


_ARGUMENT_KEYS: dict[str, Callable[[_Grammar, str], SearchKey]] = {
    "NOT": _Grammar._not, "OR": _Grammar._or,
    **dict.fromkeys(_HEADER_KEYS, _Grammar._header), "HEADER": _Grammar._header_field,
    "BODY": _Grammar._text, "TEXT": _Grammar._text,
    "KEYWORD": _Grammar._keyword, "UNKEYWORD": _Grammar._keyword,
    **dict.fromkeys(_DATE_KEYS, _Grammar._date),
    "LARGER": _Grammar._size, "SMALLER": _Grammar._size,
    "OLDER": _Grammar._age, "YOUNGER": _Grammar._age,
    "UID": _Grammar._uid, "MODSEQ": _Grammar._modseq,
}
