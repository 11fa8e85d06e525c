"""The SORT and THREAD grammar (RFC 5256 section 5, RFC 5957, RFC 5267 section 3.1).

SORT [SP "RETURN" SP (options)] SP (criteria) SP charset 1*(SP search-key), and
THREAD SP algorithm SP charset 1*(SP search-key); the search keys are SEARCH's
(mailcore.imap.searchgrammar).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailcore.imap.fetchitems import FetchItem
from mailcore.imap.lexer import Reader
from mailcore.imap.searchgrammar import (
    _has_modseq,
    parse_charset,
    parse_keys,
    parse_return_options,
)
from mailcore.message.searchkeys import SearchKey
from mailcore.sessions import BadSyntax
from mailcore.store.sorting import CRITERIA, Criterion
from mailcore.store.threading import ALGORITHMS


@dataclass(frozen=True)
class Sort:
    """A SORT command: its criteria, charset, search key and ESORT return options."""

    criteria: tuple[Criterion, ...]
    charset: str
    key: SearchKey
    return_options: frozenset[str] | None = None  # None: answer with untagged SORT
    partial: tuple[int, int] | None = None  # RETURN (PARTIAL low:high), RFC 5267 section 4.4
    update_items: tuple[FetchItem, ...] = ()  # RETURN (UPDATE (fetch-att ...)), RFC 5465 7

    @property
    def uses_modseq(self) -> bool:
        """Tell whether a MODSEQ key occurs (RFC 7162 section 3.1.5: the reply tells it)."""
        return _has_modseq(self.key)


@dataclass(frozen=True)
class Thread:
    """A THREAD command: its algorithm, charset and search key."""

    algorithm: str
    charset: str
    key: SearchKey

    @property
    def uses_modseq(self) -> bool:
        return _has_modseq(self.key)


def parse_sort(reader: Reader, uid: bool) -> Sort:
    """Read what follows "SORT"."""
    reader.space()
    return_options = partial = None
    update_items: tuple[FetchItem, ...] = ()
    if reader.take_word(b"RETURN"):
        # RFC 5267 section 3.1: ESORT takes SEARCH's return options (and CONTEXT=SORT's).
        reader.space()
        return_options, partial, update_items = parse_return_options(reader, "SORT")
        reader.space()
    criteria = tuple(reader.paren_list(lambda: _criterion(reader), empty=False))
    charset = parse_charset(reader)
    return Sort(criteria, charset, parse_keys(reader, charset), return_options, partial,
                update_items)


def _criterion(reader: Reader) -> Criterion:
    name = reader.keyword()
    reverse = name == "REVERSE"
    if reverse:
        reader.space()
        name = reader.keyword()
    if name not in CRITERIA:
        raise BadSyntax("unknown sort criterion")
    return Criterion(name, reverse)


def parse_thread(reader: Reader, uid: bool) -> Thread:
    """Read what follows "THREAD"."""
    reader.space()
    algorithm = reader.keyword()
    if algorithm not in ALGORITHMS:
        raise BadSyntax("unknown threading algorithm")
    charset = parse_charset(reader)
    return Thread(algorithm, charset, parse_keys(reader, charset))
