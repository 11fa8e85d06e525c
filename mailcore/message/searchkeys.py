"""Search keys: what a search asks of a folder's messages, as a tree of plain values.

The IMAP SEARCH grammar builds them (mailcore.imap.searchgrammar) and the store evaluates
them (mailcore.store.search); the keys follow RFC 9051 section 6.4.4 (with RFC 5032's
OLDER/YOUNGER and RFC 7162's MODSEQ) but hold nothing of IMAP's syntax.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from mailcore.message.sequenceset import SequenceSet


@dataclass(frozen=True)
class AllKey:
    """ALL: every message."""


@dataclass(frozen=True)
class FlagKey:
    """A flag or keyword that must be set (present) or not set."""

    flag: str
    present: bool = True


@dataclass(frozen=True)
class HeaderKey:
    """A header field (lower-case name) whose value contains the text; "" means present."""

    field: str
    value: str


@dataclass(frozen=True)
class TextKey:
    """BODY (the body only) or TEXT (header and body) containing the text."""

    part: str
    value: str


@dataclass(frozen=True)
class DateKey:
    """BEFORE/ON/SINCE on the internal date, or on the Date: header when field is "SENT"."""

    field: str  # "INTERNAL" or "SENT"
    op: str  # "BEFORE", "ON" or "SINCE"
    value: date


@dataclass(frozen=True)
class SizeKey:
    """LARGER or SMALLER than a number of octets."""

    op: str
    value: int


@dataclass(frozen=True)
class AgeKey:
    """OLDER or YOUNGER than a number of seconds (RFC 5032)."""

    op: str
    seconds: int


@dataclass(frozen=True)
class SetKey:
    """Messages in a sequence set, of sequence numbers or (uid) of UIDs."""

    set: SequenceSet
    uid: bool = False


@dataclass(frozen=True)
class ModSeqKey:
    """MODSEQ: a mod-sequence at least this one (RFC 7162 section 3.1.5)."""

    modseq: int
    entry: str | None = None  # e.g. "/flags/\\draft"
    entry_type: str | None = None  # "PRIV", "SHARED" or "ALL"


@dataclass(frozen=True)
class NotKey:
    """Messages the key does not match."""

    key: SearchKey


@dataclass(frozen=True)
class OrKey:
    """Messages either key matches."""

    left: SearchKey
    right: SearchKey


@dataclass(frozen=True)
class AndKey:
    """Messages every key matches."""

    keys: tuple[SearchKey, ...]


SearchKey = (AllKey | FlagKey | HeaderKey | TextKey | DateKey | SizeKey | AgeKey | SetKey
             | ModSeqKey | NotKey | OrKey | AndKey)
