"""The SORT and THREAD commands (RFC 5256, RFC 5957), with ESORT's return options (RFC 5267).

The store sorts and threads (mailcore.store.sorting, mailcore.store.threading); as for
SEARCH (mailcore.imap.search_command), this module turns message numbers and "$" into
UIDs first and numbers the answer as the session knows its messages.
"""

from __future__ import annotations

from mailcore import dbpool
from mailcore.imap import encode, replies
from mailcore.imap.context import Session
from mailcore.imap.parser import Command
from mailcore.imap.search_command import by_uid
from mailcore.imap.sortgrammar import Sort, Thread
from mailcore.message.threads import Node
from mailcore.store import sorting, threading

CAPABILITIES = ("SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES")


async def do_sort(session: Session, command: Command) -> str:
    # RFC 5256 section 3 (SORT, UID SORT), RFC 5957 (DISPLAYFROM, DISPLAYTO), RFC 7162
    # section 3.1.5 (MODSEQ in the reply).
    view = session.selected
    args: Sort = command.args
    uses_modseq = args.uses_modseq
    if uses_modseq:
        session.enable_condstore()
    found = await dbpool.run(sorting.sort, view.folder_id, args.criteria,
                             by_uid(args.key, view), view.max_uid)
    found = [(uid, modseq) for uid, modseq in found if view.seq(uid) is not None]
    numbers = [uid if command.uid else view.seq(uid) for uid, _ in found]
    line = b"* SORT" + b"".join(b" %d" % n for n in numbers)
    if uses_modseq and found:
        line += b" (MODSEQ %d)" % max(modseq for _, modseq in found)
    await session.send(line + b"\r\n")
    return replies.COMPLETED.format(verb=command.verb)


async def do_thread(session: Session, command: Command) -> str:
    # RFC 5256 section 3 (THREAD, UID THREAD) and section 4 (the THREAD response).
    view = session.selected
    args: Thread = command.args
    if args.uses_modseq:
        session.enable_condstore()
    roots = await dbpool.run(threading.thread, view.folder_id, args.algorithm,
                             by_uid(args.key, view), view.max_uid)
    body = thread_lists(roots, lambda uid: uid if command.uid else view.seq(uid))
    await session.send(encode.untagged("THREAD", *([body] if body else [])))
    return replies.COMPLETED.format(verb=command.verb)


def thread_lists(roots: list[Node], number) -> bytes:
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
