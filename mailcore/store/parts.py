"""Parts of stored messages by reference: what an IMAP URL names (CATENATE, RFC 4469).

The IMAP session reads the URL (mailcore.imap.catenate); this module finds the message
in the principal's own mailbox and cuts the section and partial range out of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailcore.message import mime
from mailcore.models import Message
from mailcore.store.blobs import blob_store
from mailcore.store.folders import FolderError, find_folder


@dataclass(frozen=True)
class MessagePart:
    """A message (or a section of one, or a range of that) in one of a mailbox's folders."""

    folder: str
    uidvalidity: int | None
    uid: int
    section: str | None = None  # FETCH BODY[section]'s section text, e.g. "1.MIME"
    offset: int | None = None  # PARTIAL (RFC 5092 section 6): octets from here...
    length: int | None = None  # ...this many of them (to the end when None)


def read_part(mailbox_id: int, part: MessagePart) -> bytes | None:
    """Return the part's octets, or None when there is no such folder, message or part.

    Only the mailbox's own folders are looked in: another tenant's are never found.
    """
    try:
        folder = find_folder(mailbox_id, part.folder)
    except FolderError:
        return None
    if part.uidvalidity is not None and folder.uidvalidity != part.uidvalidity:
        return None
    message = (Message.objects.filter(folder=folder, uid=part.uid)
               .only("blob_id", "bodystructure").first())
    if message is None:
        return None
    try:
        raw = blob_store().get(message.blob_id)
    except OSError:
        return None
    data = raw
    if part.section:
        try:
            reader = mime.SectionReader(part.section)
            structure = message.bodystructure
            if reader.needs_structure:
                structure = structure or mime.parse_structure(raw)
                if mime.find_part(structure, reader.part) is None:
                    return None
            data = reader(raw, structure)
        except ValueError:
            return None
    if part.offset is not None:
        end = None if part.length is None else part.offset + part.length
        data = data[part.offset:end]
    return data
