"""The NOTIFY grammar (RFC 5465 section 8): NOTIFY NONE, or NOTIFY SET [STATUS] event groups.

Event names are kept as the RFC spells them (case-insensitive on input); names this
server does not support are kept too, so the command can be refused with NO [BADEVENT]
rather than BAD (RFC 5465 section 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailcore.imap.fetchitems import FetchItem, fetch_item
from mailcore.imap.lexer import Reader
from mailcore.sessions import BadSyntax

FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED",
                     "SUBTREE", "MAILBOXES"})
MESSAGE_EVENTS = ("MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange")
KNOWN_EVENTS = {name.upper(): name for name in (
    *MESSAGE_EVENTS, "MailboxName", "SubscriptionChange", "MailboxMetadataChange",
    "ServerMetadataChange")}


@dataclass(frozen=True)
class EventGroup:
    """One "(" filter-mailboxes SP events ")": which mailboxes, and what to tell of them."""

    filter: str  # one of FILTERS
    mailboxes: tuple[str, ...] = ()  # SUBTREE's and MAILBOXES' names
    events: tuple[str, ...] = ()  # () for NONE
    fetch_items: tuple[FetchItem, ...] = ()  # MessageNew's fetch-atts


@dataclass(frozen=True)
class Notify:
    groups: tuple[EventGroup, ...] | None  # None for NOTIFY NONE
    status: bool = False  # NOTIFY SET STATUS


def parse_notify(r: Reader, uid: bool) -> Notify:
    """Read what follows "NOTIFY"."""
    r.space()
    if r.take_word(b"NONE"):
        return Notify(None)
    if not r.take_word(b"SET"):
        raise BadSyntax("expected SET or NONE")
    r.space()
    status = r.take_word(b"STATUS")
    if status:
        r.space()
    groups = [_group(r)]
    while r.take(b" "):
        groups.append(_group(r))
    return Notify(tuple(groups), status)


def _group(r: Reader) -> EventGroup:
    r.open()
    name = r.keyword()
    if name not in FILTERS:
        raise BadSyntax("unknown mailbox filter")
    mailboxes: list[str] = []
    if name in ("SUBTREE", "MAILBOXES"):
        r.space()
        mailboxes = r.paren_list(r.mailbox, empty=False) if r.peek(b"(") else [r.mailbox()]
    events: list[str] = []
    fetch_items: list[FetchItem] = []
    if r.take(b" "):
        if r.take_word(b"NONE"):
            pass
        elif r.peek(b"("):
            events = r.paren_list(lambda: _event(r, fetch_items), empty=False)
        else:
            # Deviation: the examples of RFC 5465 section 3.1 list the events without
            # their parentheses; they are taken that way too.
            events.append(_event(r, fetch_items))
            while r.take(b" "):
                events.append(_event(r, fetch_items))
    r.close()
    return EventGroup(name, tuple(mailboxes), tuple(events), tuple(fetch_items))


def _event(r: Reader, fetch_items: list[FetchItem]) -> str:
    name = r.atom()
    event = KNOWN_EVENTS.get(name.upper(), name)
    if event == "MessageNew" and r.peek(b" ("):
        r.space()
        fetch_items += r.paren_list(lambda: fetch_item(r), empty=False)
    return event
