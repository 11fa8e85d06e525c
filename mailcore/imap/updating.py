"""Searches kept up to date (CONTEXT=SEARCH and CONTEXT=SORT, RFC 5267 section 4).

A SEARCH or SORT with RETURN (UPDATE) leaves a context behind: the UIDs it found, in
mailbox or sort order. Whenever the session catches up with its folder (after a command,
during IDLE, or between commands), every context runs its search again and tells the
client what left the result (ESEARCH ... REMOVEFROM, before any EXPUNGE that renumbers
those messages) and what joined it (ESEARCH ... ADDTO, after the EXISTS that numbers
them), RFC 5267 sections 4.3.3 and 4.3.4. Contexts end with CANCELUPDATE or when the
folder is no longer selected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailcore import dbpool
from mailcore.imap import encode, fetch, replies
from mailcore.imap.context import Session
from mailcore.imap.parser import CancelUpdate, Command, Fetch, FetchItem
from mailcore.imap.view import View
from mailcore.message.searchkeys import SearchKey
from mailcore.message.sequenceset import SequenceSet
from mailcore.sessions import BadSyntax
from mailcore.store import search as store_search
from mailcore.store import sorting
from mailcore.store.sorting import Criterion

# RFC 5267 section 4.3.1: at least one updating context per client, preferably more.
MAX_CONTEXTS = 5
_ANY_UID = 2**32 - 1  # a search run again sees every message; the view picks its own


@dataclass
class Context:
    """One updating search: its program, and the UIDs it last told the client of."""

    tag: str
    uid: bool  # the client counts in UIDs (UID SEARCH, UID SORT), not message numbers
    key: SearchKey  # message numbers and "$" already turned into UIDs
    criteria: tuple[Criterion, ...] | None  # None for SEARCH: mailbox order
    result: list[int] = field(default_factory=list)
    fetch_items: tuple[FetchItem, ...] = ()  # UPDATE (fetch-att ...), RFC 5465 section 7


class Contexts:
    """A session's updating searches on its selected folder."""

    def __init__(self, modseq: int) -> None:
        self.searches: dict[str, Context] = {}
        self.modseq = modseq  # the folder's HIGHESTMODSEQ the results are up to date with

    def stale(self, view: View) -> bool:
        return self.modseq != view.modseq

    async def announce(self, session: Session, updates: Callable[[], list[bytes]]) -> None:
        """Send updates() (the view's own responses) with each search's ESEARCH around.

        updates() takes in what changed, renumbering the view. RFC 5267 section 4.3.4:
        a message expunged now leaves the result (REMOVEFROM) before the EXPUNGE, by the
        numbers it had; one that no longer matches leaves after its FETCH (RFC 5465 5.1);
        section 4.3.3: ADDTO comes after the EXISTS that numbers what joins. RFC 5465
        section 7: new messages joining a search with UPDATE (fetch-atts) are fetched
        between the EXISTS and the ADDTO.
        """
        view = session.selected
        known = view.max_uid
        searches = list(self.searches.values())
        fresh = await dbpool.run(_run_all, view.folder_id, searches)
        before = {uid: view.seq(uid) for context, found in zip(searches, fresh, strict=True)
                  for uid in set(context.result).difference(found)}
        lines = updates()
        first, last, fetches = [], [], []
        for context, found in zip(searches, fresh, strict=True):
            left = set(context.result).difference(found)
            expunged = {uid for uid in left if view.seq(uid) is None}
            kept, pairs = _removals(context, context.result, expunged)
            if pairs:
                first.append(_esearch(context, "REMOVEFROM", pairs, before.get))
            kept, pairs = _removals(context, kept, left - expunged)
            if pairs:
                last.append(_esearch(context, "REMOVEFROM", pairs, view.seq))
            context.result, pairs = _additions(context, found, kept, view)
            if pairs:
                last.append(_esearch(context, "ADDTO", pairs, view.seq))
                arrived = [uid for _, uids in pairs for uid in uids if uid > known]
                if context.fetch_items and arrived:
                    fetches.append(Fetch(SequenceSet.from_numbers(arrived),
                                         context.fetch_items))
        self.modseq = view.modseq
        if first or lines:
            await session.send(*first, *lines)
        for arrived in fetches:
            await fetch.do_fetch(session, Command("*", "FETCH", True, arrived))
        if last:
            await session.send(*last)


def check_tag(session: Session, tag: str) -> None:
    """Refuse UPDATE with a tag naming an updating search already (RFC 5267 section 4.3)."""
    if session.updating is not None and tag in session.updating.searches:
        raise BadSyntax(replies.TAG_IN_USE)


def start(session: Session, command: Command, key: SearchKey,
          criteria: tuple[Criterion, ...] | None, uids: list[int],
          fetch_items: tuple[FetchItem, ...] = ()) -> bool:
    """Keep a search found by a command with RETURN (UPDATE) up to date; False if refused.

    RFC 5267 section 4.3: a tag already naming an updating search is refused with BAD;
    section 4.3.1: past MAX_CONTEXTS, the caller answers with NO [NOUPDATE "tag"].
    """
    contexts = session.updating
    if contexts is not None and len(contexts.searches) >= MAX_CONTEXTS:
        return False
    if contexts is None:
        contexts = session.updating = Contexts(session.selected.modseq)
    elif not contexts.searches:
        contexts.modseq = session.selected.modseq
    contexts.searches[command.tag] = Context(command.tag, command.uid, key, criteria,
                                             list(uids), fetch_items)
    return True


async def do_cancelupdate(session: Session, command: Command) -> str:
    # RFC 5267 section 4.3.5.
    args: CancelUpdate = command.args
    # A tag naming no updating search (perhaps refused with NOUPDATE) has nothing to stop.
    contexts = session.updating
    if contexts is None:
        return replies.COMPLETED.format(verb=command.verb)
    for tag in args.tags:
        contexts.searches.pop(tag, None)
    if not contexts.searches:
        session.updating = None  # back to the cost of a session without contexts
    return replies.COMPLETED.format(verb=command.verb)


def _run_all(folder_id: int, searches: list[Context]) -> list[list[int]]:
    """Return each search's UIDs now, in its order: one unit of database work."""
    out = []
    for context in searches:
        if context.criteria is None:
            found = store_search.search(folder_id, context.key, _ANY_UID)
        else:
            found = sorting.sort(folder_id, context.criteria, context.key, _ANY_UID)
        out.append([uid for uid, _ in found])
    return out


def _removals(context: Context, result: list[int], gone: set[int]
              ) -> tuple[list[int], list[tuple[int, list[int]]]]:
    """Return the result without gone, and (position, run of UIDs) per run removed.

    A sorted result names where each run starts once the runs before it are gone; a
    search's result is in mailbox order and says position 0 (RFC 5267 section 4.3.4).
    """
    kept: list[int] = []
    pairs: list[tuple[int, list[int]]] = []
    if not gone:
        return result, pairs
    previous_gone = False
    for uid in result:
        if uid not in gone:
            kept.append(uid)
            previous_gone = False
        elif context.criteria is None:
            if not pairs:
                pairs.append((0, []))
            pairs[-1][1].append(uid)
        elif previous_gone:
            pairs[-1][1].append(uid)
        else:
            pairs.append((len(kept) + 1, [uid]))
            previous_gone = True
    return kept, pairs


def _additions(context: Context, found: list[int], kept: list[int], view: View
               ) -> tuple[list[int], list[tuple[int, list[int]]]]:
    """Return the new result and (position, run of UIDs) per run that joined it.

    Only messages the client knows of join (a message newer than its last EXISTS joins
    once announced). Messages keep their relative order under SORT's criteria, none of
    which can change, so each run's position is its place in the new result.
    """
    known = set(kept)
    result: list[int] = []
    pairs: list[tuple[int, list[int]]] = []
    previous_new = False
    for uid in found:
        if uid in known:
            result.append(uid)
            previous_new = False
        elif view.seq(uid) is not None:
            result.append(uid)
            if previous_new and context.criteria is not None:
                pairs[-1][1].append(uid)
            elif context.criteria is not None or not pairs:
                pairs.append((0 if context.criteria is None else len(result), [uid]))
            else:
                pairs[-1][1].append(uid)
            previous_new = True
    return result, pairs


def _esearch(context: Context, name: str, pairs: list[tuple[int, list[int]]],
             number: Callable[[int], int | None]) -> bytes:
    """Return * ESEARCH (TAG "t") [UID] ADDTO|REMOVEFROM (position set ...)."""
    items = []
    for position, uids in pairs:
        numbers = uids if context.uid else [number(uid) for uid in uids]
        if context.criteria is None:
            numbers_set = encode.sequence_set(sorted(n for n in numbers if n is not None))
        else:
            numbers_set = encode.ordered_set([n for n in numbers if n is not None])
        items.append(b"%d %s" % (position, numbers_set))
    parts = [b"ESEARCH", b"(TAG " + encode.quoted(context.tag) + b")"]
    if context.uid:
        parts.append(b"UID")
    parts.append(name.encode() + b" (" + b" ".join(items) + b")")
    return encode.untagged(*parts)
