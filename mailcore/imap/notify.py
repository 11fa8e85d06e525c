"""IMAP NOTIFY (RFC 5465): which events a client asked to hear of, and telling it of them.

A session with NOTIFY SET keeps a watch of its own on the change hub (released by
NOTIFY NONE, a new NOTIFY SET, or the end of the session) and a picture of its folders
(names, counters, subscriptions). Woken, it compares the picture with the store's and
tells the client what changed: untagged STATUS for other folders' new, expunged or
reflagged messages, LIST for names created, renamed or deleted and for subscription
changes, and the selected folder's own updates (EXISTS, EXPUNGE, FETCH) at once. The
session sends these between commands (mailcore.imap.listening) and during IDLE.
"""

from __future__ import annotations

from django.conf import settings

from mailcore import dbpool
from mailcore.imap import encode, fetch, replies
from mailcore.imap.context import Session
from mailcore.imap.notifygrammar import MESSAGE_EVENTS, EventGroup, Notify
from mailcore.imap.parser import Command, Fetch
from mailcore.message.sequenceset import SequenceSet
from mailcore.sessions import BadSyntax, Refused
from mailcore.store import events
from mailcore.store import folders as store_folders
from mailcore.store.folders import INBOX, SEPARATOR, Overview

# AnnotationChange and the METADATA events need extensions this server does not offer.
SUPPORTED = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName",
             "SubscriptionChange")
_SELECTED = ("SELECTED", "SELECTED-DELAYED")


class Notifier:
    """A session's NOTIFY SET: its event groups, its watch, and its picture of the folders."""

    def __init__(self, mailbox_id: int, groups: tuple[EventGroup, ...]) -> None:
        self.mailbox_id = mailbox_id
        self.selected = next((g for g in groups if g.filter in _SELECTED), None)
        self.groups = [g for g in groups if g.filter not in _SELECTED]
        self.watch = events.hub.watch(mailbox_id)
        self.folders: dict[int, Overview] = {}
        self.subscribed: frozenset[str] = frozenset()

    def stop(self) -> None:
        """Leave the change hub (every way a NOTIFY SET ends comes here)."""
        events.hub.unwatch(self.mailbox_id, self.watch)

    @property
    def follows_selected(self) -> bool:
        """Tell whether the selected folder's changes go out as they happen."""
        return self.selected is not None and "MessageNew" in self.selected.events

    @property
    def expunges_at_once(self) -> bool:
        """SELECTED (not SELECTED-DELAYED) MessageExpunge: EXPUNGE even between commands
        (RFC 5465 sections 5.3 and 6.1)."""
        return self.follows_selected and self.selected.filter == "SELECTED"

    def events_for(self, name: str, subscribed: frozenset[str]) -> set[str]:
        """Return the events asked for a folder: those of every group naming it (RFC 5465
        section 6)."""
        return {event for group in self.groups if _matches(group, name, subscribed)
                for event in group.events}

    def watched(self, folders: dict[int, Overview], subscribed: frozenset[str]
                ) -> list[Overview]:
        """Return the folders whose message events are asked for."""
        return [f for f in folders.values() if "MessageNew" in self.events_for(f.name, subscribed)]

    def changes(self, folders: dict[int, Overview], subscribed: frozenset[str],
                selected_id: int | None, utf8: bool, condstore: bool) -> list[bytes]:
        """Take in the store's picture; return the STATUS and LIST responses telling it."""
        old, old_subscribed = self.folders, self.subscribed
        self.folders, self.subscribed = folders, subscribed
        out = []
        for folder_id, now in folders.items():
            was = old.get(folder_id)
            if was is None or was.name != now.name:
                asked = self.events_for(now.name, subscribed)
                if was is not None:
                    asked |= self.events_for(was.name, old_subscribed)
                if "MailboxName" in asked:
                    out.append(_list(now.name, now.name in subscribed, utf8,
                                     old=was.name if was else None))
                if was is None:
                    continue
            if folder_id == selected_id:
                continue
            asked = self.events_for(now.name, subscribed)
            if "MessageNew" not in asked:
                continue
            if (was.messages, was.uidnext) != (now.messages, now.uidnext):
                # RFC 5465 sections 5.2 and 5.3.
                items = ["MESSAGES", "UIDNEXT"]
            elif was.highestmodseq != now.highestmodseq and "FlagChange" in asked:
                items = ["UIDVALIDITY", "HIGHESTMODSEQ"]  # section 5.1
                condstore = False
            else:
                continue
            if condstore:
                items.append("HIGHESTMODSEQ")
            out.append(_status(now, items, utf8))
        for folder_id, was in old.items():
            if folder_id not in folders:
                if "MailboxName" in self.events_for(was.name, old_subscribed):
                    out.append(_list(was.name, False, utf8, gone=True))  # section 5.4
        for name in sorted(subscribed ^ old_subscribed):
            if "SubscriptionChange" in (self.events_for(name, subscribed)
                                        | self.events_for(name, old_subscribed)):
                out.append(_list(name, name in subscribed, utf8))  # section 5.5
        return out


async def do_notify(session: Session, command: Command) -> str:
    # RFC 5465 section 3.1.
    args: Notify = command.args
    if args.groups is None:
        stop(session)
        return replies.COMPLETED.format(verb=command.verb)
    _check(args.groups)
    notifier = Notifier(session.mailbox_id, args.groups)
    try:
        folders, subscribed = await dbpool.run(store_folders.overview, session.mailbox_id)
    except BaseException:
        notifier.stop()
        raise
    watched = notifier.watched(folders, subscribed)
    if len(watched) > settings.IMAP_NOTIFY_MAX_MAILBOXES:
        notifier.stop()
        raise Refused(replies.NOTIFY_TOO_MANY)
    stop(session)
    notifier.folders, notifier.subscribed = folders, subscribed
    session.notifier = notifier
    if args.status:
        selected = session.selected.folder_id if session.selected is not None else None
        items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
        if session.condstore:
            items.append("HIGHESTMODSEQ")
        shown = set(watched)
        for folder_id, folder in folders.items():
            if folder in shown and folder_id != selected:
                session.write(_status(folder, items, session.utf8))
    # The selected folder's accumulated changes follow, as after NOOP (dispatch() sends them).
    return replies.COMPLETED.format(verb=command.verb)


def stop(session: Session) -> None:
    """End the session's NOTIFY SET, if any."""
    if session.notifier is not None:
        session.notifier.stop()
        session.notifier = None


async def deliver(session: Session, idling: bool = False) -> None:
    """Tell the client what happened since it was last told (between commands, in IDLE)."""
    # Deviation: during IDLE the selected folder's changes go out even when no SELECTED
    # group asks for them (RFC 5465 section 4), as IDLE without NOTIFY sends them.
    notifier = session.notifier
    notifier.watch.clear()  # before looking, so a change made meanwhile wakes us again
    view = session.selected
    if view is not None and not notifier.follows_selected and idling:
        await session.sync()
    elif view is not None and notifier.follows_selected:
        known = view.max_uid
        await session.sync(expunge_allowed=idling or notifier.expunges_at_once)
        view = session.selected
        if view is not None and view.max_uid > known and notifier.selected.fetch_items:
            # RFC 5465 section 5.2: the EXISTS, then a FETCH of what the client asked.
            arrived = Fetch(SequenceSet(((known + 1, view.max_uid),)),
                            notifier.selected.fetch_items)
            await fetch.do_fetch(session, Command("*", "FETCH", True, arrived))
    folders, subscribed = await dbpool.run(store_folders.overview, session.mailbox_id)
    if session.notifier is not notifier:
        return
    if len(notifier.watched(folders, subscribed)) > settings.IMAP_NOTIFY_MAX_MAILBOXES:
        # RFC 5465 section 5.8: as if NOTIFY NONE had been received.
        stop(session)
        await session.send(encode.untagged_status("OK", replies.NOTIFICATION_OVERFLOW))
        return
    selected = session.selected.folder_id if session.selected is not None else None
    lines = notifier.changes(folders, subscribed, selected, session.utf8, session.condstore)
    if lines:
        await session.send(*lines)


def _check(groups: tuple[EventGroup, ...]) -> None:
    """Refuse event groups RFC 5465 does not allow (BAD) or this server cannot serve (NO)."""
    if any(event not in SUPPORTED for group in groups for event in group.events):
        # Section 3.1: NO, not BAD, naming every event the server supports.
        raise Refused(replies.BAD_EVENT.format(events=" ".join(SUPPORTED)))
    if sum(group.filter in _SELECTED for group in groups) > 1:
        raise BadSyntax(replies.NOTIFY_SELECTED_TWICE)  # section 6.1
    for group in groups:
        given = set(group.events)
        if group.filter in _SELECTED and given - set(MESSAGE_EVENTS):
            raise BadSyntax(replies.NOTIFY_SELECTED_EVENTS)  # section 6.1
        if ("MessageNew" in given) != ("MessageExpunge" in given) or (
                "FlagChange" in given and "MessageNew" not in given):
            raise BadSyntax(replies.NOTIFY_EVENT_PAIRS)  # section 5


def _matches(group: EventGroup, name: str, subscribed: frozenset[str]) -> bool:
    # RFC 5465 sections 6.2 to 6.6. This server's only inbox is INBOX; every folder is
    # personal.
    if group.filter == "PERSONAL":
        return True
    if group.filter == "INBOXES":
        return name == INBOX
    if group.filter == "SUBSCRIBED":
        return name in subscribed
    if group.filter == "SUBTREE":
        return any(name == top or name.startswith(top + SEPARATOR) for top in group.mailboxes)
    return name in group.mailboxes  # MAILBOXES: no wildcards (section 6.6)


def _status(folder: Overview, items: list[str], utf8: bool) -> bytes:
    values = {"MESSAGES": folder.messages, "UIDNEXT": folder.uidnext,
              "UIDVALIDITY": folder.uidvalidity, "HIGHESTMODSEQ": folder.highestmodseq}
    pairs = " ".join(f"{item} {values[item]}" for item in items)
    return encode.untagged("STATUS", encode.mailbox(folder.name, utf8=utf8), f"({pairs})")


def _list(name: str, subscribed: bool, utf8: bool, old: str | None = None,
          gone: bool = False) -> bytes:
    """Return * LIST for a name NOTIFY tells of (RFC 5465 sections 5.4 and 5.5)."""
    attributes = ["\\NonExistent"] if gone else []
    if subscribed:
        attributes.append("\\Subscribed")
    parts = [encode.flags(attributes), b'"/"', encode.mailbox(name, utf8=utf8)]
    if old is not None:
        parts.append(b'("OLDNAME" (' + encode.mailbox(old, utf8=utf8) + b"))")
    return encode.untagged("LIST", *parts)
