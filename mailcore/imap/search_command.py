"""The SEARCH command (RFC 9051 section 6.4.4): numbers to UIDs, the store's search, replies.

The grammar reads the command (mailcore.imap.searchgrammar) and the store evaluates the
key tree (mailcore.store.search); this module turns message numbers and "$" into UID
sets first, because only the session knows its numbering, then answers with SEARCH
(IMAP4rev1) or ESEARCH (RFC 4731, and always under IMAP4rev2), and saves the result for
"$" (SEARCHRES, RFC 5182).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

from mailcore import dbpool
from mailcore.imap import encode, replies, updating
from mailcore.imap.context import Session
from mailcore.imap.parser import Command, Search
from mailcore.imap.view import View
from mailcore.message.searchkeys import AndKey, FlagKey, NotKey, OrKey, SearchKey, SetKey
from mailcore.message.sequenceset import SequenceSet
from mailcore.sessions import BadSyntax
from mailcore.store import search as store_search

_NO_UID = SequenceSet(((0, 0),))  # UIDs start at 1: a set matching nothing


def by_uid(key: SearchKey, view: View) -> SearchKey:
    """Return the key with every message-number set and "$" turned into a UID set.

    \\Recent, which only the session knows (RFC 3501 section 2.3.2), becomes a UID set too.
    """
    if isinstance(key, FlagKey) and key.flag.lower() == "\\recent":
        recent = view.recent_uids()
        uids = SetKey(SequenceSet.from_numbers(recent) if recent else _NO_UID, uid=True)
        return uids if key.present else NotKey(uids)
    if isinstance(key, SetKey):
        if key.uid and not key.set.saved:
            return key
        return SetKey(view.uid_ranges(key.set, key.uid), uid=True)
    if isinstance(key, NotKey):
        return NotKey(by_uid(key.key, view))
    if isinstance(key, OrKey):
        return OrKey(by_uid(key.left, view), by_uid(key.right, view))
    if isinstance(key, AndKey):
        return AndKey(tuple(by_uid(k, view) for k in key.keys))
    return key


async def do_search(session: Session, command: Command) -> str:
    # RFC 9051 section 6.4.4 (RFC 3501 section 6.4.4), ESEARCH (RFC 4731 section 3.1),
    # SEARCHRES (RFC 5182 section 2), MODSEQ (RFC 7162 section 3.1.5), CONTEXT=SEARCH
    # (RFC 5267 section 4: UPDATE, PARTIAL; CONTEXT is a hint, taken as given).
    view = session.selected
    args: Search = command.args
    if session.utf8_accept and args.charset is not None:
        # RFC 6855 section 3 (and erratum 4029): no CHARSET once UTF8=ACCEPT is on.
        raise BadSyntax(replies.CHARSET_AFTER_UTF8)
    if args.uses_modseq:
        session.enable_condstore()
    options = args.return_options
    if options is None and session.rev2:
        options = frozenset({"ALL"})  # IMAP4rev2 answers with ESEARCH only
    saving = options is not None and "SAVE" in options
    updates = options is not None and "UPDATE" in options
    if updates:
        updating.check_tag(session, command.tag)
    key = by_uid(args.key, view)
    try:
        found = await dbpool.run(store_search.search, view.folder_id, key, view.max_uid)
    except BaseException:
        if saving:
            view.saved = array("I")  # RFC 5182 section 2.1: a failed SEARCH empties "$"
        raise
    found = [(uid, modseq) for uid, modseq in found if view.seq(uid) is not None]
    uids = [uid for uid, _ in found]
    numbers = uids if command.uid else [view.seq(uid) for uid in uids]
    modseq = _highest_modseq(found, options) if args.uses_modseq else 0
    if saving:
        view.saved = array("I", _saved(uids, options))
    if updates and not updating.start(session, command, key, None, uids, args.update_items):
        session.write(encode.untagged_status("NO", replies.NO_UPDATE.format(
            tag=encode.quoted(command.tag).decode())))
    if options is None:
        line = b"* SEARCH" + b"".join(b" %d" % n for n in numbers)
        if modseq:
            line += b" (MODSEQ %d)" % modseq
        await session.send(line + b"\r\n")
    elif options != {"SAVE"}:
        await session.send(_esearch(command, options, numbers, modseq, args.partial))
    return replies.COMPLETED.format(verb=command.verb)


def _highest_modseq(found: list[tuple[int, int]], options: frozenset[str] | None) -> int:
    """Return the MODSEQ a SEARCH reports: the highest of the messages it returns.

    RFC 7162 section 3.1.5 and RFC 4731 section 3.2: RETURN (MIN) and (MAX) return one
    message each, and the mod-sequence is that of those alone.
    """
    if not found:
        return 0
    if options is None or options & {"ALL", "COUNT"} or not options & {"MIN", "MAX"}:
        return max(m for _, m in found)
    returned = ([found[0]] if "MIN" in options else []) + (
        [found[-1]] if "MAX" in options else [])
    return max(m for _, m in returned)


def _saved(uids: list[int], options: frozenset[str]) -> list[int]:
    """Return what SAVE keeps: MIN and/or MAX alone keep just those (RFC 5182 2.4)."""
    if options & {"ALL", "COUNT"} or not options & {"MIN", "MAX"} or not uids:
        return uids
    kept = ([uids[0]] if "MIN" in options else []) + ([uids[-1]] if "MAX" in options else [])
    return sorted(set(kept))


def _esearch(command: Command, options: frozenset[str], numbers: list[int],
             modseq: int, partial: tuple[int, int] | None) -> bytes:
    """Return * ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [COUNT n] [ALL set]
    [PARTIAL (range set)] [MODSEQ n]."""
    parts = [b"ESEARCH", b"(TAG " + encode.quoted(command.tag) + b")"]
    if command.uid:
        parts.append(b"UID")
    if numbers and "MIN" in options:
        parts.append(b"MIN %d" % min(numbers))
    if numbers and "MAX" in options:
        parts.append(b"MAX %d" % max(numbers))
    if "COUNT" in options:
        parts.append(b"COUNT %d" % len(numbers))
    if numbers and "ALL" in options:
        parts.append(b"ALL " + encode.sequence_set(numbers))
    if partial is not None:
        parts.append(partial_data(partial, numbers, encode.sequence_set))
    if modseq and options & {"MIN", "MAX", "COUNT", "ALL", "PARTIAL"}:
        parts.append(b"MODSEQ %d" % modseq)
    return encode.untagged(*parts)


def partial_data(partial: tuple[int, int], numbers: list[int],
                 as_set: Callable[[list[int]], bytes]) -> bytes:
    """Return PARTIAL (low:high set), or NIL for a range past the results (RFC 5267 4.4)."""
    low, high = partial
    chosen = numbers[low - 1:high]
    return b"PARTIAL (%d:%d %s)" % (low, high, as_set(chosen) if chosen else b"NIL")
