"""IMAP folder commands: CREATE, DELETE, RENAME, SUBSCRIBE, LIST, LSUB, STATUS, APPEND, QUOTA."""

from __future__ import annotations

import re
from dataclasses import replace

from django.conf import settings

from mailcore import dbpool
from mailcore.imap import catenate, encode, replies, utf7
from mailcore.imap.context import Session
from mailcore.imap.parser import (
    Append,
    Command,
    Create,
    GetQuota,
    List,
    MailboxName,
    Rename,
    Status,
)
from mailcore.message import transfer
from mailcore.sessions import Refused
from mailcore.store import folders as store_folders
from mailcore.store import messages
from mailcore.store.delivery import QuotaExceeded
from mailcore.store.folders import SEPARATOR, FolderError, Listed

QUOTA_ROOT = ""  # one quota for the whole mailbox (RFC 9208 section 3.2)


def _folder_error(exc: FolderError) -> Refused:
    return Refused(replies.FOLDER_ERROR.format(code=exc.code, text=exc.text))


async def do_create(session: Session, command: Command) -> str:
    # RFC 9051 section 6.3.4; CREATE-SPECIAL-USE: RFC 6154 section 3.
    args: Create = command.args
    if len(args.special_use) > 1:
        raise Refused(replies.ONE_SPECIAL_USE)
    special_use = args.special_use[0] if args.special_use else ""
    if utf7.is_unnameable(args.mailbox):
        raise Refused(replies.INVALID_NAME)  # RFC 3501 section 5.1.3
    try:
        await dbpool.run(store_folders.add_folder, session.mailbox_id, args.mailbox, special_use)
    except FolderError as exc:
        raise _folder_error(exc) from None
    session.log.info("create folder=%s", args.mailbox)
    return replies.COMPLETED.format(verb=command.verb)


async def do_delete(session: Session, command: Command) -> str:
    # RFC 9051 section 6.3.5 (a folder with subfolders is refused: they would be orphans).
    args: MailboxName = command.args
    try:
        await dbpool.run(store_folders.remove_folder, session.mailbox_id, args.mailbox)
    except FolderError as exc:
        raise _folder_error(exc) from None
    view = session.selected
    if view is not None and store_folders.canonical_name(view.name) == \
            store_folders.canonical_name(args.mailbox):
        session.deselect()
        await session.send(encode.untagged_status("OK", replies.CLOSED))
    session.log.info("delete folder=%s", args.mailbox)
    return replies.COMPLETED.format(verb=command.verb)


async def do_rename(session: Session, command: Command) -> str:
    # RFC 9051 section 6.3.6: subfolders move along; renaming INBOX moves its messages.
    args: Rename = command.args
    if utf7.is_unnameable(args.new_name) and not utf7.is_unnameable(args.mailbox):
        raise Refused(replies.INVALID_NAME)
    try:
        await dbpool.run(store_folders.rename_folder, session.mailbox_id, args.mailbox,
                         args.new_name)
    except FolderError as exc:
        raise _folder_error(exc) from None
    view = session.selected
    if view is not None and store_folders.canonical_name(view.name) == \
            store_folders.canonical_name(args.mailbox) and view.name.upper() != "INBOX":
        view.name = args.new_name  # the same folder under its new name
    session.log.info("rename folder=%s to=%s", args.mailbox, args.new_name)
    return replies.COMPLETED.format(verb=command.verb)


async def do_subscribe(session: Session, command: Command) -> str:
    # RFC 9051 sections 6.3.7 (SUBSCRIBE) and 6.3.8 (UNSUBSCRIBE).
    args: MailboxName = command.args
    try:
        await dbpool.run(store_folders.subscribe, session.mailbox_id, args.mailbox,
                         command.name == "SUBSCRIBE")
    except FolderError as exc:
        raise _folder_error(exc) from None
    return replies.COMPLETED.format(verb=command.verb)


# LIST and LSUB ---------------------------------------------------------------------------


def pattern(reference: str, mailbox: str) -> re.Pattern[str]:
    """Return a regular expression for a LIST reference and pattern (RFC 9051 6.3.9).

    "*" matches anything, "%" anything but the hierarchy separator; INBOX matches in any
    case.
    """
    full = reference + mailbox
    if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in SEPARATOR + "*%"):
        full = "INBOX" + full[5:]
    regex = "".join(".*" if c == "*" else f"[^{re.escape(SEPARATOR)}]*" if c == "%"
                    else re.escape(c) for c in full)
    return re.compile(regex, re.S)


def _matches(patterns: list[re.Pattern[str]], name: str) -> bool:
    return any(p.fullmatch(name) for p in patterns)


async def do_list(session: Session, command: Command) -> str:
    # RFC 9051 section 6.3.9, RFC 3501 sections 6.3.8 (LIST) and 6.3.9 (LSUB),
    # LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154), LIST-STATUS (RFC 5819),
    # CHILDREN (RFC 3348: always returned).
    args: List = command.args
    lsub = command.name == "LSUB"
    if not lsub and args.patterns == ("",) and not args.select_options:
        # RFC 9051 section 6.3.9: the hierarchy delimiter and the root name.
        await session.send(encode.untagged("LIST", b"(\\Noselect)", b'"/"', b'""'))
        return replies.COMPLETED.format(verb=command.verb)
    found = await dbpool.run(store_folders.list_entries, session.mailbox_id)
    patterns = [pattern(args.reference, p) for p in args.patterns]
    if lsub:
        lines = _lsub(found, patterns, session.utf8)
        await session.send(*lines)
        return replies.COMPLETED.format(verb=command.verb)
    listed = _list(found, patterns, args)
    statuses = {}
    if "STATUS" in args.return_options and listed:
        statuses = await dbpool.run(store_folders.statuses, session.mailbox_id,
                                    [folder.name for folder, _, _ in listed])
    lines = []
    for folder, attributes, extra in listed:
        name = encode.mailbox(folder.name, utf8=session.utf8)
        line = encode.untagged("LIST", encode.flags(attributes), b'"/"', name, *extra)
        lines.append(line)
        if folder.name in statuses:
            lines.append(status_response(name, statuses[folder.name], args.status_items))
    await session.send(*lines)
    return replies.COMPLETED.format(verb=command.verb)


def _children(found: list[Listed], folder: Listed) -> list[Listed]:
    prefix = folder.name + SEPARATOR
    return [f for f in found if f.name.startswith(prefix)]


def _with_parents(found: list[Listed]) -> list[Listed]:
    """Return the entries plus, as non-existent names, the missing parents of subscriptions.

    LSUB's \\Noselect parents and RECURSIVEMATCH may have to show them (RFC 5258 3.5).
    """
    names = {f.name for f in found}
    parents = {SEPARATOR.join(parts[:depth])
               for f in found if f.subscribed and len(parts := f.name.split(SEPARATOR)) > 1
               for depth in range(1, len(parts))}
    extra = [Listed(name, "", False, exists=False) for name in parents - names]
    return sorted([*found, *extra], key=lambda f: f.name)


def _subscribed_below(found: list[Listed], folder: Listed,
                      patterns: list[re.Pattern[str]]) -> bool:
    """Tell whether a subscribed name below folder is one the patterns do not match.

    RFC 5258 section 3.5 (RECURSIVEMATCH) and RFC 3501 section 6.3.9 (LSUB): such a
    parent is shown for the child that the pattern leaves out.
    """
    return any(c.subscribed and not _matches(patterns, c.name)
               for c in _children(found, folder))


def _list(found: list[Listed], patterns: list[re.Pattern[str]], args: List
          ) -> list[tuple[Listed, list[str], list[bytes]]]:
    """Return (folder, attributes, extended data) for each LIST response (RFC 5258)."""
    subscribed_only = "SUBSCRIBED" in args.select_options
    special_only = "SPECIAL-USE" in args.select_options
    recursive = "RECURSIVEMATCH" in args.select_options
    show_subscribed = subscribed_only or "SUBSCRIBED" in args.return_options
    existing = [f for f in found if f.exists]
    if subscribed_only:
        found = _with_parents(found)
    else:
        found = existing
    listed = []
    for folder in found:
        if not _matches(patterns, folder.name):
            continue
        extra: list[bytes] = []
        if recursive and subscribed_only and _subscribed_below(found, folder, patterns):
            extra = [b'("CHILDINFO" ("SUBSCRIBED"))']
        if subscribed_only and not folder.subscribed and not extra:
            continue
        if special_only and not folder.special_use:
            continue
        if folder.exists:
            children = _children(existing, folder)
            attributes = ["\\HasChildren" if children else "\\HasNoChildren"]
        else:
            attributes = ["\\NonExistent"]  # subscribed, or a parent of one (RFC 5258)
        if folder.special_use:
            attributes.append(folder.special_use)
        if show_subscribed and folder.subscribed:
            attributes.append("\\Subscribed")
        listed.append((folder, attributes, extra))
    return listed


def _lsub(found: list[Listed], patterns: list[re.Pattern[str]], utf8: bool) -> list[bytes]:
    lines = []
    found = _with_parents(found)
    for folder in found:
        if not _matches(patterns, folder.name):
            continue
        if folder.subscribed:
            attributes = []
        elif _subscribed_below(found, folder, patterns):
            # RFC 3501 section 6.3.9: "%" shows the parent of a subscribed folder so.
            attributes = ["\\Noselect"]
        else:
            continue
        lines.append(encode.untagged("LSUB", encode.flags(attributes), b'"/"',
                                     encode.mailbox(folder.name, utf8=utf8)))
    return lines


# STATUS ----------------------------------------------------------------------------------

def status_response(name: bytes, counters: dict[str, int], items: tuple[str, ...]) -> bytes:
    """Return * STATUS name (item value ...) for the items asked (RFC 9051 7.3.4)."""
    values = {**counters, "APPENDLIMIT": settings.MESSAGE_SIZE_LIMIT}
    pairs = [f"{item} {values[item]}" for item in dict.fromkeys(items) if item in values]
    return encode.untagged("STATUS", name, "(" + " ".join(pairs) + ")")


async def do_status(session: Session, command: Command) -> str:
    # RFC 9051 section 6.3.11; SIZE and DELETED (RFC 8438, RFC 9051), HIGHESTMODSEQ
    # (RFC 7162 section 3.1.6), APPENDLIMIT (RFC 7889).
    args: Status = command.args
    if "HIGHESTMODSEQ" in args.items:
        session.enable_condstore()
    try:
        counters = await dbpool.run(store_folders.folder_status, session.mailbox_id,
                                    args.mailbox)
    except FolderError as exc:
        raise _folder_error(exc) from None
    name = encode.mailbox(args.mailbox, utf8=session.utf8)
    await session.send(status_response(name, counters, args.items))
    return replies.COMPLETED.format(verb=command.verb)


# APPEND ----------------------------------------------------------------------------------

async def do_append(session: Session, command: Command) -> str:
    # RFC 9051 section 6.3.12, MULTIAPPEND (RFC 3502), APPENDUID (RFC 4315 section 3),
    # APPENDLIMIT (RFC 7889), literal8 (RFC 3516), CATENATE (RFC 4469).
    args: Append = command.args
    limit = settings.MESSAGE_SIZE_LIMIT
    items = []
    for message in args.messages:
        if message.catenate is not None:
            message = replace(message, data=await catenate.assemble(session,
                                                                    message.catenate))
        if len(message.data) > limit:
            raise Refused(replies.MESSAGE_TOO_BIG.format(limit=limit))
        if not message.data:
            raise Refused(replies.EMPTY_MESSAGE)
        # A literal8 may hold binary parts, which BODY[...] could not send in a literal:
        # they are saved base64-encoded, as Dovecot saves them (RFC 3516 section 4.3).
        data = transfer.encode_binary_parts(message.data) if message.binary else message.data
        items.append((data, [f for f in message.flags if f != "\\Recent"], message.date))
    try:
        added = await dbpool.run(messages.append_to, session.mailbox_id, args.mailbox, items)
    except FolderError:
        raise Refused(replies.TRY_CREATE) from None
    except QuotaExceeded:
        raise Refused(replies.OVER_QUOTA) from None
    view = session.selected
    if view is not None and view.folder_id == added.folder_id:
        lines = view.own_additions(added.states, added.before, added.after)
        if lines is None:
            session.must_sync = True
        else:
            await session.send(*lines)
    session.log.info("append folder=%s messages=%d octets=%d", args.mailbox, len(items),
                     sum(len(m[0]) for m in items))
    return replies.APPENDED.format(
        uidvalidity=added.uidvalidity,
        uids=encode.sequence_set(state.uid for state in added.states).decode())


# QUOTA (RFC 9208) ------------------------------------------------------------------------

def _quota_response(used: int, limit: int) -> bytes:
    # STORAGE is counted in units of 1024 octets (RFC 9208 section 5.1).
    return encode.untagged("QUOTA", encode.string(QUOTA_ROOT),
                           f"(STORAGE {used // 1024} {limit // 1024})")


async def do_getquotaroot(session: Session, command: Command) -> str:
    # RFC 9208 section 4.1.2.
    args: MailboxName = command.args
    try:
        used, limit = await dbpool.run(store_folders.usage, session.mailbox_id, args.mailbox)
    except FolderError as exc:
        raise _folder_error(exc) from None
    name = encode.mailbox(args.mailbox, utf8=session.utf8)
    if not limit:
        await session.send(encode.untagged("QUOTAROOT", name))
    else:
        await session.send(encode.untagged("QUOTAROOT", name, encode.string(QUOTA_ROOT)),
                           _quota_response(used, limit))
    return replies.COMPLETED.format(verb=command.verb)


async def do_getquota(session: Session, command: Command) -> str:
    # RFC 9208 section 4.1.1.
    args: GetQuota = command.args
    if args.root != QUOTA_ROOT:
        raise Refused(replies.NO_QUOTA_ROOT)
    used, limit = await dbpool.run(store_folders.usage, session.mailbox_id)
    if not limit:
        raise Refused(replies.NO_QUOTA_ROOT)
    await session.send(_quota_response(used, limit))
    return replies.COMPLETED.format(verb=command.verb)


async def do_setquota(session: Session, command: Command) -> str:
    # RFC 9208 section 4.1.4: quotas are the host's to set, never the user's.
    raise Refused(replies.QUOTA_NOT_SETTABLE)
