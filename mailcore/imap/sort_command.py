"""The SORT and THREAD commands (RFC 5256, RFC 5957), with ESORT's return options (RFC 5267).

The store sorts and threads (mailcore.store.sorting, mailcore.store.threading); as for
SEARCH (mailcore.imap.search_command), this module turns message numbers and "$" into
UIDs first and numbers the answer as the session knows its messages.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

from mailcore import dbpool
from mailcore.imap import encode, replies, updating
from mailcore.imap.context import Session
from mailcore.imap.parser import Command
from mailcore.imap.search_command import by_uid, partial_data
from mailcore.imap.sortgrammar import Sort, Thread
from mailcore.message.threads import Node
from mailcore.sessions import BadSyntax
from mailcore.store import sorting, threading

CAPABILITIES = ("SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
                "ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT")


async def do_sort(session: Session, command: Command) -> str:
    # RFC 5256 section 3 (SORT, UID SORT), RFC 5957 (DISPLAYFROM, DISPLAYTO), RFC 7162
    # section 3.1.5 (MODSEQ in the reply), ESORT (RFC 5267 section 3), SAVE (RFC 5182),
    # CONTEXT=SORT (RFC 5267 section 4: UPDATE, PARTIAL in sort order).
    view = session.selected
    args: Sort = command.args
    _check_charset(session, args.charset)
    uses_modseq = args.uses_modseq
    if uses_modseq:
        session.enable_condstore()
    options = args.return_options
    saving = options is not None and "SAVE" in options
    updates = options is not None and "UPDATE" in options
    if updates:
        updating.check_tag(session, command.tag)
    key = by_uid(args.key, view)
    try:
        found = await dbpool.run(sorting.sort, view.folder_id, args.criteria, key,
                                 view.max_uid)
    except BaseException:
        if saving:
            view.saved = array("I")  # RFC 5182 section 2.1: a failed command empties "$"
        raise
    found = [(uid, modseq) for uid, modseq in found if view.seq(uid) is not None]
    numbers = [uid if command.uid else view.seq(uid) for uid, _ in found]
    if updates and not updating.start(session, command, key, args.criteria,
                                      [uid for uid, _ in found], args.update_items):
        session.write(encode.untagged_status("NO", replies.NO_UPDATE.format(
            tag=encode.quoted(command.tag).decode())))
    if options is None:
        line = b"* SORT" + b"".join(b" %d" % n for n in numbers)
        if uses_modseq and found:
            line += b" (MODSEQ %d)" % max(modseq for _, modseq in found)
        await session.send(line + b"\r\n")
        return replies.COMPLETED.format(verb=command.verb)
    returned = found  # what the reply (and SAVE) covers: MIN and/or MAX alone, just those
    if found and not options & {"ALL", "COUNT"} and options & {"MIN", "MAX"}:
        returned = ([found[0]] if "MIN" in options else []) + \
            ([found[-1]] if "MAX" in options else [])
    if saving:
        view.saved = array("I", sorted({uid for uid, _ in returned}))
    if options != {"SAVE"}:
        modseq = max((m for _, m in returned), default=0) if uses_modseq else 0
        await session.send(_esort(command, options, numbers, modseq, args.partial))
    return replies.COMPLETED.format(verb=command.verb)


def _esort(command: Command, options: frozenset[str], numbers: list[int],
           modseq: int, partial: tuple[int, int] | None) -> bytes:
    """Return ESORT's * ESEARCH (RFC 5267 section 3.2): MIN and MAX are the first and
    the last in sort order, ALL lists the messages in sort order."""
    parts = [b"ESEARCH", b"(TAG " + encode.quoted(command.tag) + b")"]
    if command.uid:
        parts.append(b"UID")
    if numbers and "MIN" in options:
        parts.append(b"MIN %d" % numbers[0])
    if numbers and "MAX" in options:
        parts.append(b"MAX %d" % numbers[-1])
    if "COUNT" in options:
        parts.append(b"COUNT %d" % len(numbers))
    if numbers and "ALL" in options:
        parts.append(b"ALL " + encode.ordered_set(numbers))
    if partial is not None:
        parts.append(partial_data(partial, numbers, encode.ordered_set))
    if modseq and options & {"MIN", "MAX", "COUNT", "ALL", "PARTIAL"}:
        parts.append(b"MODSEQ %d" % modseq)
    return encode.untagged(*parts)


async def do_thread(session: Session, command: Command) -> str:
    # RFC 5256 section 3 (THREAD, UID THREAD) and section 4 (the THREAD response).
    view = session.selected
    args: Thread = command.args
    _check_charset(session, args.charset)
    if args.uses_modseq:
        session.enable_condstore()
    roots = await dbpool.run(threading.thread, view.folder_id, args.algorithm,
                             by_uid(args.key, view), view.max_uid)
    body = thread_lists(roots, lambda uid: uid if command.uid else view.seq(uid))
    await session.send(encode.untagged("THREAD", *([body] if body else [])))
    return replies.COMPLETED.format(verb=command.verb)


def _check_charset(session: Session, charset: str) -> None:
    # RFC 6855 erratum 4029: with UTF8=ACCEPT on, SORT's and THREAD's charset is UTF-8.
    if session.utf8_accept and charset != "UTF-8":
        raise BadSyntax(replies.CHARSET_AFTER_UTF8)


def thread_lists(roots: list[Node], number: Callable[[int], int | None]) -> bytes:
    """Return the THREAD response's thread-lists (RFC 5256 section 4) for the trees.

    A parent with one child is followed by it ("3 6"), one with more by a thread-list
    per child ("3 (4)(5)"); a dummy parent shows only its children ("((4)(5))"). A node
    whose number the session does not know (number() is None) shows like a dummy.
    Built with a stack, not recursion: trees may be very deep.
    """
    out: list[bytes] = []
    pending: list[bytes | Node] = []
    for root in reversed(roots):
        pending += [b")", root, b"("]
    while pending:
        item = pending.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        node, chain = item, []
        while True:
            shown = number(node.number) if node.number is not None else None
            if shown is not None:
                chain.append(b"%d" % shown)
            if len(node.children) != 1:
                break
            node = node.children[0]
        text = b" ".join(chain)
        if chain and node.children:
            text += b" "
        out.append(text)
        for child in reversed(node.children):
            pending += [b")", child, b"("]
    return b"".join(out)
