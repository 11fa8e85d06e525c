"""IMAP commands on the selected folder: SELECT, CLOSE, UNSELECT, EXPUNGE, STORE, COPY, MOVE."""

from __future__ import annotations

from mailcore import dbpool
from mailcore.imap import encode, replies
from mailcore.imap.context import Session
from mailcore.imap.parser import Command, Copy, Expunge, Select, Store
from mailcore.imap.view import View, fetch_flags
from mailcore.sessions import BadSyntax, Refused
from mailcore.store import messages
from mailcore.store.delivery import QuotaExceeded
from mailcore.store.folders import FolderError

_STORE_OPS = {"replace": "set", "add": "add", "remove": "remove"}


async def do_select(session: Session, command: Command) -> str:
    # RFC 9051 sections 6.3.2 (SELECT) and 6.3.3 (EXAMINE), RFC 3501 section 6.3.1,
    # RFC 7162 sections 3.1.8 (CONDSTORE parameter) and 3.2.5 (QRESYNC parameter).
    args: Select = command.args
    if args.qresync is not None and not session.qresync:
        raise BadSyntax(replies.QRESYNC_NOT_ENABLED)
    if session.selected is not None:
        # A failed SELECT leaves no folder selected either (RFC 9051 section 6.3.2).
        session.deselect()
        await session.send(encode.untagged_status("OK", replies.CLOSED))
    read_only = command.name == "EXAMINE"
    # RFC 3501 section 2.3.2: SELECT takes \Recent, EXAMINE only shows it (section 6.3.2).
    recent = "none" if session.rev2 else "peek" if read_only else "take"
    try:
        opened = await dbpool.run(messages.select_folder, session.mailbox_id, args.mailbox,
                                  recent)
    except FolderError:
        raise Refused(replies.NO_SUCH_FOLDER) from None
    if args.condstore or args.qresync is not None:
        session.enable_condstore()
    view = View(opened, args.mailbox, read_only=read_only, shows_recent=not session.rev2)
    flags, permanent = view.flags_response()
    lines = [flags, encode.untagged(len(view), "EXISTS")]
    if not session.rev2:
        lines.append(view.recent_response())
        first_unseen = view.seq(opened.first_unseen) if opened.first_unseen else None
        if first_unseen is not None:
            lines.append(encode.untagged_status("OK", replies.UNSEEN.format(value=first_unseen)))
    else:
        attributes = [opened.folder.special_use] if opened.folder.special_use else []
        lines.append(encode.untagged("LIST", encode.flags(attributes), b'"/"',
                                     encode.mailbox(opened.folder.name, utf8=True)))
    lines += [
        permanent,
        encode.untagged_status("OK", replies.UIDVALIDITY.format(value=view.uidvalidity)),
        encode.untagged_status("OK", replies.UIDNEXT.format(value=view.uidnext)),
        encode.untagged_status("OK", replies.HIGHESTMODSEQ.format(value=view.modseq)),
    ]
    await session.send(*lines)
    if args.qresync is not None and args.qresync.uidvalidity == view.uidvalidity:
        await _resynchronize(session, view, args)
    session.select(view)
    session.log.info("select folder=%s messages=%d read_only=%s",
                     opened.folder.name, len(view), view.read_only)
    access = "READ-ONLY" if view.read_only else "READ-WRITE"
    return replies.SELECTED.format(access=access, verb=command.verb)


async def _resynchronize(session: Session, view: View, args: Select) -> None:
    """Tell a QRESYNC client what vanished and what changed since its modseq (RFC 7162 3.2.5)."""
    qresync = args.qresync
    found = await dbpool.run(messages.sync_state, view.folder_id, qresync.modseq)
    if found is None:
        return
    _, changed, gone = found
    known = qresync.known_uids
    # Only UIDs gone from our view: one expunged since SELECT read it is announced later.
    vanished = [uid for uid in gone if view.seq(uid) is None
                and (known is None or known.contains(uid, view.max_uid))]
    if vanished:
        session.write(encode.untagged("VANISHED", "(EARLIER)", encode.sequence_set(vanished)))
    for count, message in enumerate(changed, 1):
        number = view.seq(message.uid)
        if number is not None and view.learn_keywords(message.flags):
            for line in view.flags_response():  # a keyword set since SELECT read them
                session.write(line)
        if number is not None:
            session.write(fetch_flags(number, message, uid=True, modseq=True,
                                      recent=view.is_recent(message.uid)))
        if count % 256 == 0:
            await session.drain()  # a big resync goes out as it is made
    await session.drain()


async def do_close(session: Session, command: Command) -> str:
    # RFC 9051 section 6.4.1: expunge silently (no EXPUNGE responses), then deselect.
    view = session.selected
    if not view.read_only:
        await dbpool.run(messages.expunge_deleted, view.folder_id)
    session.deselect()
    return replies.COMPLETED.format(verb=command.verb)


async def do_unselect(session: Session, command: Command) -> str:
    # RFC 3691 section 2 (and RFC 9051 section 6.4.2): deselect without expunging.
    session.deselect()
    return replies.COMPLETED.format(verb=command.verb)


async def do_expunge(session: Session, command: Command) -> str:
    # RFC 9051 section 6.4.3; UID EXPUNGE: RFC 4315 section 2.1 (RFC 9051 section 6.4.9).
    view = session.selected
    if view.read_only:
        raise Refused(replies.READ_ONLY)
    args: Expunge | None = command.args
    uids = view.resolve(args.sequence, uid=True) if args is not None else None
    if uids == []:
        return replies.COMPLETED.format(verb=command.verb)
    gone, before, after = await dbpool.run(messages.expunge_deleted_with_modseqs,
                                           view.folder_id, uids)
    if not view.own_removals(gone, before, after):
        session.must_sync = True
    await session.sync()
    if session.condstore:
        return replies.EXPUNGED_MODSEQ.format(value=view.modseq, verb=command.verb)
    return replies.COMPLETED.format(verb=command.verb)


async def do_store(session: Session, command: Command) -> str:
    # RFC 9051 section 6.4.6; UNCHANGEDSINCE and MODIFIED: RFC 7162 section 3.1.3.
    view = session.selected
    args: Store = command.args
    if view.read_only:
        raise Refused(replies.READ_ONLY)
    if args.unchanged_since is not None:
        session.enable_condstore()
    uids = view.resolve(args.sequence, command.uid)
    if not uids:
        return replies.COMPLETED.format(verb=command.verb)
    flags = [f for f in args.flags if f != "\\Recent"]  # \Recent is the server's alone
    states, refused, before, after = await dbpool.run(
        messages.store_flags_with_modseqs, view.folder_id, uids, _STORE_OPS[args.mode], flags,
        args.unchanged_since)
    if before == view.modseq:
        view.modseq = after  # nothing but this command happened: no need to announce it
    else:
        session.must_sync = True
    lines = []
    if view.learn_keywords(f for state in states for f in state.flags):
        lines += view.flags_response()
    for state in states:
        number = view.seq(state.uid)
        if number is None:
            continue
        # RFC 7162 section 3.2.4: under QRESYNC, flag changes always carry the UID.
        uid = command.uid or session.qresync
        if not args.silent:
            lines.append(fetch_flags(number, state, uid=uid, modseq=session.condstore,
                                     recent=view.is_recent(state.uid)))
        elif session.condstore and after > before and state.modseq == after:
            # RFC 7162 section 3.1.3: even .SILENT reports the new mod-sequence.
            lines.append(fetch_flags(number, state, uid=uid, modseq=True, flags=False))
        if len(lines) >= 256:
            await session.send(*lines)
            lines = []
    await session.send(*lines)
    if refused:
        numbers = refused if command.uid else [view.seq(u) for u in refused]
        return replies.CONDITIONAL_STORE_FAILED.format(
            numbers=encode.sequence_set(n for n in numbers if n).decode())
    return replies.COMPLETED.format(verb=command.verb)


async def do_copy(session: Session, command: Command) -> str:
    # RFC 9051 section 6.4.7; COPYUID: RFC 4315 section 3.
    uidvalidity, pairs = await _copy(session, command, move=False)
    if not pairs:
        return replies.COMPLETED.format(verb=command.verb)
    return replies.COPIED.format(uidvalidity=uidvalidity, **_uid_sets(pairs))


async def do_move(session: Session, command: Command) -> str:
    # RFC 6851 section 3.3: COPYUID in an untagged OK, then the expunges, then done.
    if session.selected.read_only:
        raise Refused(replies.READ_ONLY)
    uidvalidity, pairs = await _copy(session, command, move=True)
    if pairs:
        await session.send(encode.untagged_status(
            "OK", replies.MOVED.format(uidvalidity=uidvalidity, **_uid_sets(pairs))))
        session.must_sync = True
        await session.sync()
    return replies.COMPLETED.format(verb=command.verb)


async def _copy(session: Session, command: Command, move: bool
                ) -> tuple[int, list[tuple[int, int]]]:
    view = session.selected
    args: Copy = command.args
    uids = view.resolve(args.sequence, command.uid)
    if not uids:
        return 0, []
    try:
        uidvalidity, target_id, pairs = await dbpool.run(
            messages.copy_to, view.folder_id, uids, session.mailbox_id, args.mailbox, move)
    except FolderError:
        raise Refused(replies.TRY_CREATE) from None
    except QuotaExceeded:
        raise Refused(replies.OVER_QUOTA) from None
    if target_id == view.folder_id:
        session.must_sync = True
    return uidvalidity, pairs


def _uid_sets(pairs: list[tuple[int, int]]) -> dict[str, str]:
    # Both lists ascend together, so their compact forms still pair up one to one.
    return {"source": encode.sequence_set(s for s, _ in pairs).decode(),
            "target": encode.sequence_set(t for _, t in pairs).decode()}
