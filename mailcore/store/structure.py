"""ENVELOPE and BODYSTRUCTURE kept per message: computed at delivery, backfilled for old rows."""

from __future__ import annotations

import logging

from mailcore.message import mime
from mailcore.message.envelope import read_envelope
from mailcore.message.summary import split_header_block
from mailcore.models import Message

log = logging.getLogger("mailcore.store")


def compute(raw: bytes) -> dict:
    """Return the envelope and bodystructure fields of a Message for raw.

    The parser never raises by design; should it all the same, the fields stay null and
    are computed again on first FETCH rather than refusing the message.
    """
    try:
        return {"envelope": read_envelope(split_header_block(raw)),
                "bodystructure": mime.parse_structure(raw)}
    except Exception:
        log.warning("could not compute the MIME structure of a message", exc_info=True)
        return {"envelope": None, "bodystructure": None}


def backfill(message: Message, raw: bytes) -> None:
    """Compute a row's missing envelope/bodystructure from its blob and save them."""
    fields = compute(raw)
    if fields["envelope"] is None or fields["bodystructure"] is None:
        raise ValueError(f"no MIME structure for message {message.pk}")
    message.envelope, message.bodystructure = fields["envelope"], fields["bodystructure"]
    # Every row sharing the blob gets them too (one delivery to N mailboxes, copies).
    Message.objects.filter(blob_id=message.blob_id, bodystructure__isnull=True).update(**fields)
