"""IMAP FETCH (RFC 9051 section 6.4.5): every message data item, in bounded chunks.

Rows are loaded a chunk at a time with only the columns the items need; the message's
own header sections (BODY[HEADER], BODY[HEADER.FIELDS ...], RFC822.HEADER) come from the
header block the store keeps per message, other body sections from the blobs, read in
batches of bounded size; non-PEEK body fetches set \\Seen first, so the FLAGS they
report are the new ones. A chunk's responses go out in one write.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence

from mailcore import dbpool
from mailcore.imap import bodystructure, encode, replies
from mailcore.imap.context import Session
from mailcore.imap.parser import Command, Fetch, FetchItem, Section
from mailcore.imap.view import View
from mailcore.message import transfer
from mailcore.message.mime import SectionReader
from mailcore.sessions import BadSyntax, Refused
from mailcore.store import messages
from mailcore.store.messages import MessageRow, flags_of

CHUNK = 250  # messages whose rows are loaded at once
BLOB_BATCH = 8 * 1024 * 1024  # octets of blobs read at once

_COLUMNS = {
    "INTERNALDATE": ("internal_date",), "RFC822.SIZE": ("size",),
    "ENVELOPE": ("envelope",), "BODYSTRUCTURE": ("bodystructure",),
}
_BODY_COLUMNS = ("blob_id", "size")
# The FLAGS item of a message without keywords, by (seen, answered, flagged, deleted, draft).
_FLAGS_ITEMS = {key: b"FLAGS " + encode.flags(names)
                for key, names in messages.SYSTEM_FLAG_SETS.items()}
_WHOLE_MESSAGE_ITEMS = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT"})

# Renders one data item of one message: (row, raw message or None) -> b"LABEL value".
ItemRenderer = Callable[[MessageRow, bytes | None], bytes]
# Renders one data item of a batch of messages: (rows, raws or Nones) -> [b"LABEL value"].
Renderer = Callable[[Sequence[MessageRow], Sequence[bytes | None]], list[bytes]]


def _needs_body(item: FetchItem) -> bool:
    return (item.name in _WHOLE_MESSAGE_ITEMS or item.section is not None) \
        and not _needs_header(item)


def _needs_header(item: FetchItem) -> bool:
    """Tell whether the item is a section of the message's own header (Message.header)."""
    if item.name == "RFC822.HEADER":
        return True
    return (item.name == "BODY" and item.section is not None and not item.section.part
            and (item.section.text or "").startswith("HEADER"))


def _needs_structure(item: FetchItem) -> bool:
    """Tell whether rendering the item reads the stored body structure."""
    if item.name in ("BODYSTRUCTURE", "BODY") and item.section is None:
        return True
    if item.name == "BODY":
        return SectionReader(str(item.section)).needs_structure
    return item.name in ("BINARY", "BINARY.SIZE") and bool(item.section.part)


def _sets_seen(item: FetchItem) -> bool:
    """Tell whether fetching the item sets \\Seen (RFC 9051 section 6.4.5)."""
    if item.name in ("RFC822", "RFC822.TEXT"):
        return True
    return item.name in ("BODY", "BINARY") and item.section is not None and not item.peek


async def do_fetch(session: Session, command: Command) -> str:
    # RFC 9051 section 6.4.5 (RFC 3501 section 6.4.5), BINARY (RFC 3516 section 4.2),
    # CHANGEDSINCE (RFC 7162 section 3.1.4), VANISHED (RFC 7162 section 3.2.6).
    view = session.selected
    args: Fetch = command.args
    items = list(args.items)
    if args.vanished and not (command.uid and session.qresync
                              and args.changed_since is not None):
        raise BadSyntax(replies.VANISHED_NEEDS_CHANGEDSINCE)
    if args.changed_since is not None or any(i.name == "MODSEQ" for i in items):
        session.enable_condstore()
    names = {i.name for i in items}
    if "MODSEQ" not in names and (args.changed_since is not None
                                  or session.condstore and "FLAGS" in names):
        # RFC 7162 sections 3.1.4.1 (CHANGEDSINCE) and 3.1 (flags come with their modseq).
        items.append(FetchItem("MODSEQ"))
    if command.uid and "UID" not in names:
        items.insert(0, FetchItem("UID"))  # RFC 9051 section 6.4.9
    uids = view.resolve(args.sequence, command.uid)
    if args.vanished:
        ranges = view.uid_ranges(args.sequence, uid=True).resolve(view.max_uid)
        gone = await dbpool.run(messages.vanished, view.folder_id, args.changed_since, ranges)
        if gone:
            await session.send(encode.untagged("VANISHED", "(EARLIER)",
                                               encode.sequence_set(gone)))
    columns = {c for i in items for c in _COLUMNS.get(i.name, ())}
    body = any(_needs_body(i) for i in items)
    if body:
        columns.update(_BODY_COLUMNS)
    if any(_needs_structure(i) for i in items):
        columns.add("bodystructure")
    header = any(_needs_header(i) for i in items)
    if header:
        columns.update(("header", "blob_id"))
    renderers = [_renderer(item, view) for item in items]
    sets_seen = not view.read_only and any(_sets_seen(i) for i in items)
    found = 0
    for start in range(0, len(uids), CHUNK):
        chunk = uids[start:start + CHUNK]
        rows, raws = await dbpool.run(_load, view.folder_id, chunk, columns,
                                      args.changed_since, body, header)
        found += len(rows)
        seen_now = await _mark_seen(session, view, rows) if sets_seen else set()
        await _respond(session, view, renderers, "FLAGS" in names, rows, raws, seen_now)
    if found < len(uids) and args.changed_since is None and not command.uid:
        # RFC 2180 section 4.1.2: expunged by another session, not yet announced here,
        # and no longer kept.
        raise Refused(replies.EXPUNGE_ISSUED)
    return replies.COMPLETED.format(verb=command.verb)


def _load(folder_id: int, uids: list[int], columns: set[str], changed_since: int | None,
          body: bool, header: bool) -> tuple[list[MessageRow], list[bytes]]:
    """Return a chunk's rows and, when bodies are wanted, its first batch of blobs.

    One unit of database work, so that a FETCH of a few messages is one trip to the pool.
    """
    rows = messages.fetch_rows(folder_id, uids, columns, changed_since)
    if len(rows) < len(uids) and changed_since is None:
        # Expunged by another session, not yet announced here: still readable while the
        # store keeps it (RFC 2180 section 4.1.1).
        found = {row.uid for row in rows}
        kept = messages.fetch_kept(folder_id, [uid for uid in uids if uid not in found])
        if kept:
            rows = sorted([*rows, *kept], key=lambda row: row.uid)
    if header:
        messages.read_headers(rows)
    if not body or not rows:
        return rows, []
    return rows, messages.read_many(_batches(rows)[0])


async def _mark_seen(session: Session, view: View, rows: list[MessageRow]) -> set[int]:
    """Set \\Seen on the rows without it; return their UIDs."""
    unseen = [row.uid for row in rows if not row.seen]
    if not unseen:
        return set()
    states, _, before, after = await dbpool.run(
        messages.store_flags_with_modseqs, view.folder_id, unseen, "add", ["\\Seen"])
    if before == view.modseq:
        view.modseq = after
    else:
        session.must_sync = True
    modseqs = {state.uid: state.modseq for state in states}
    for row in rows:
        if row.uid in modseqs:
            row.seen = True
            row.modseq = modseqs[row.uid]
    return set(modseqs)


async def _respond(session: Session, view: View, renderers: list[Renderer],
                   with_flags: bool, rows: list[MessageRow], raws: list[bytes],
                   seen_now: set[int]) -> None:
    """Write the FETCH responses of a chunk; raws holds the blobs of its first batch."""
    batches = _batches(rows) if raws else [rows]
    for index, batch in enumerate(batches):
        if not raws:
            bodies: list[bytes | None] = [None] * len(batch)
        elif index == 0:
            bodies = raws
        else:
            bodies = await dbpool.run(messages.read_many, batch)
        # One write a batch: a write per message costs a send() system call each. Each
        # item is rendered for the whole batch at once, and each message's response is
        # one % of a format made once: no Python call per message and item.
        numbers = _numbers(view, batch)
        if numbers is None:
            kept = [(number, row, raw) for row, raw in zip(batch, bodies, strict=True)
                    if (number := view.seq(row.uid)) is not None]
            if not kept:
                continue
            numbers, batch, bodies = zip(*kept, strict=True)
        columns = [render(batch, bodies) for render in renderers]
        line = b"* %d FETCH (" + b" ".join([b"%s"] * len(renderers)) + b")\r\n"
        out: list[bytes] = []
        rendered = zip(*columns, strict=True) if columns else [()] * len(batch)
        for number, row, values in zip(numbers, batch, rendered, strict=True):
            if row.uid in seen_now:
                if not with_flags:
                    values = (*values, b"FLAGS " + encode.flags(
                        view.flags_of(row.uid, flags_of(row))))
            elif not with_flags or not row.keywords:
                out.append(line % (number, *values))
                continue
            if view.learn_keywords(flags_of(row)):
                # A keyword another session set: announced in FLAGS before it is used
                # (RFC 9051 section 7.3.5; RFC 3501 section 7.2.6).
                out.extend(view.flags_response())
            out.append(b"* %d FETCH (%s)\r\n" % (number, b" ".join(values)))
        session.write(b"".join(out))
        await session.drain()


def _numbers(view: View, rows: Sequence[MessageRow]) -> range | None:
    """Return the rows' message numbers when they are consecutive messages of the view
    (as in a FETCH of a range), else None (then view.seq() numbers each)."""
    if not rows:
        return None
    first = view.seq(rows[0].uid)
    if first is None:
        return None
    uids = array("I", [row.uid for row in rows])
    return range(first, first + len(rows)) if view.uids[first - 1:first - 1 + len(rows)] \
        == uids else None


def _batches(rows: list[MessageRow]) -> list[list[MessageRow]]:
    """Split rows so that each batch's blobs add up to at most BLOB_BATCH (one at least)."""
    batches: list[list[MessageRow]] = []
    size = 0
    for row in rows:
        if not batches or size + row.size > BLOB_BATCH:
            batches.append([])
            size = 0
        batches[-1].append(row)
        size += row.size
    return batches


def _renderer(item: FetchItem, view: View) -> Renderer:
    """Return how to render one data item for a batch, its section parsed once for all.

    The items a header listing asks for are rendered by one comprehension per batch;
    the others by calling their per-message renderer on each message.
    """
    name = item.name
    if name == "UID":
        return lambda rows, raws: [b"UID %d" % row.uid for row in rows]
    if name == "RFC822.SIZE":
        return lambda rows, raws: [b"RFC822.SIZE %d" % row.size for row in rows]
    if name == "MODSEQ":
        return lambda rows, raws: [b"MODSEQ (%d)" % row.modseq for row in rows]
    if name == "FLAGS":
        def flags(rows: Sequence[MessageRow], raws: Sequence[bytes | None]) -> list[bytes]:
            if view.recent:
                return [b"FLAGS " + encode.flags(view.flags_of(row.uid, flags_of(row)))
                        for row in rows]
            # Without keywords, a message's FLAGS item is one of 32, made once.
            return [_FLAGS_ITEMS[row.seen, row.answered, row.flagged, row.deleted, row.draft]
                    if not row.keywords else b"FLAGS " + encode.flags(flags_of(row))
                    for row in rows]

        return flags
    if _needs_header(item) and item.partial is None:
        label = item.label().encode("ascii") + b" "
        from_headers = SectionReader(str(item.section) if name == "BODY"
                                     else name.removeprefix("RFC822.")).from_headers

        def header_section(rows: Sequence[MessageRow],
                           raws: Sequence[bytes | None]) -> list[bytes]:
            sections = from_headers([row.header for row in rows])
            return [b"%s{%d}\r\n%s" % (label, len(data), data)  # encode.literal
                    for data in sections]

        return header_section
    render = _item_renderer(item, view)
    return lambda rows, raws: [render(row, raw) for row, raw in zip(rows, raws, strict=True)]


def _item_renderer(item: FetchItem, view: View) -> ItemRenderer:
    """Return how to render one data item of one message."""
    name = item.name
    label = item.label().encode("ascii") + b" "
    if name == "UID":
        return lambda row, raw: b"UID %d" % row.uid
    if name == "FLAGS":
        return lambda row, raw: b"FLAGS " + encode.flags(view.flags_of(row.uid, flags_of(row)))
    if name == "INTERNALDATE":
        return lambda row, raw: label + encode.date_time(row.internal_date)
    if name == "RFC822.SIZE":
        return lambda row, raw: b"RFC822.SIZE %d" % row.size
    if name == "MODSEQ":
        return lambda row, raw: b"MODSEQ (%d)" % row.modseq
    if name == "ENVELOPE":
        return lambda row, raw: label + bodystructure.envelope_sexp(row.envelope)
    if name == "BODYSTRUCTURE":
        return lambda row, raw: label + bodystructure.bodystructure_sexp(row.bodystructure,
                                                                 extensible=True)
    if name == "BODY" and item.section is None:
        return lambda row, raw: label + bodystructure.bodystructure_sexp(row.bodystructure,
                                                                 extensible=False)
    if name == "RFC822":
        return lambda row, raw: label + encode.literal(raw)
    if name in ("RFC822.HEADER", "RFC822.TEXT", "BODY"):
        reader = SectionReader(str(item.section) if name == "BODY"
                                    else name.removeprefix("RFC822."))
        partial = item.partial
        if _needs_header(item):
            from_header = reader.from_header
            if partial is None:
                def header_section(row: MessageRow, raw: bytes | None) -> bytes:
                    data = from_header(row.header)
                    return b"%s{%d}\r\n%s" % (label, len(data), data)  # encode.literal
            else:
                def header_section(row: MessageRow, raw: bytes | None) -> bytes:
                    return label + encode.literal(_partial(from_header(row.header), partial))

            return header_section

        def section(row: MessageRow, raw: bytes | None) -> bytes:
            data = reader(raw, getattr(row, "bodystructure", None))
            return label + encode.literal(_partial(data, partial))

        return section

    def binary(row: MessageRow, raw: bytes | None) -> bytes:
        decoded = binary_content(raw, getattr(row, "bodystructure", None), item.section)
        if name == "BINARY.SIZE":
            return label + b"%d" % len(decoded)
        data = _partial(decoded, item.partial)
        return label + encode.literal(data, binary=b"\0" in data)

    return binary


def _partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    origin, count = partial
    return data[origin:origin + count]


def binary_content(raw: bytes, structure: dict, section: Section) -> bytes:
    """Return a part's content with its transfer encoding undone (RFC 3516 section 4.2).

    Raise Refused [UNKNOWN-CTE] for an encoding this server cannot decode.
    """
    if not section.part:
        return raw
    node = _find_part(structure, section.part)
    if node is None:
        return b""
    start, end = node["body"]
    body = raw[start:end]
    encoding = (node.get("encoding") or "7bit").lower()
    if node["kind"] != "single" or encoding in ("7bit", "8bit", "binary"):
        return body
    if encoding == "base64":
        return transfer.decode_base64(body)
    if encoding == "quoted-printable":
        return transfer.decode_quoted_printable(body)
    raise Refused(replies.UNKNOWN_CTE)


def _find_part(structure: dict, path: Sequence[int]) -> dict | None:
    """Return the part a section path names (RFC 9051 section 6.4.5, part specifier)."""
    node = structure
    for number in path:
        if node["kind"] == "message":
            node = node["message"]
        if node["kind"] == "multipart":
            parts = node.get("parts") or []
            if number > len(parts):
                return None
            node = parts[number - 1]
        elif number != 1:
            return None
    return node
