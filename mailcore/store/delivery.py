"""Delivery: store one accepted message once, for every local recipient and remote forward."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from mailcore.models import Blob, Mailbox, Message, OutboundMessage, OutboundRecipient
from mailcore.store import events, structure
from mailcore.store.blobs import blob_store
from mailcore.store.folders import INBOX, lock_folder
from mailcore.store.headers import summarize

log = logging.getLogger("mailcore.store")


class QuotaExceeded(Exception):
    """The message does not fit in these mailboxes; nothing was stored."""

    def __init__(self, addresses: list[str]) -> None:
        super().__init__(", ".join(addresses))
        self.addresses = addresses


@dataclass
class Delivered:
    blob_key: str
    message_ids: list[int]
    outbound_id: int | None


def deliver(raw: bytes, mail_from: str, mailbox_ids: Iterable[int],
            remote: Iterable[str] = (), folder: str = INBOX,
            sender_mailbox_id: int | None = None) -> Delivered:
    """Store raw in each mailbox's folder and queue it for remote recipients, durably.

    The blob is on disk (fsynced) before the rows that point at it are committed; when
    this returns, the message survives a crash. Raises QuotaExceeded, storing nothing,
    if it would take any mailbox over its quota.
    """
    mailbox_ids = sorted(set(mailbox_ids))
    remote = sorted(set(remote))
    size = len(raw)
    fields = {**summarize(raw), **structure.compute(raw)}
    key = blob_store().put(raw)
    now = timezone.now()
    with transaction.atomic():
        mailboxes = list(Mailbox.objects.select_for_update().filter(pk__in=mailbox_ids)
                         .select_related("domain").order_by("pk"))
        full = [m.address for m in mailboxes if m.is_over_quota(size)]
        if full:
            raise QuotaExceeded(full)
        Blob.objects.get_or_create(key=key, defaults={"size": size})
        message_ids = []
        for mailbox in mailboxes:
            target = lock_folder(mailbox.pk, folder)
            target.highestmodseq += 1
            message = Message.objects.create(
                folder=target, uid=target.uidnext, blob_id=key, size=size,
                internal_date=now, modseq=target.highestmodseq, **fields,
            )
            target.uidnext += 1
            target.save(update_fields=["uidnext", "highestmodseq"])
            message_ids.append(message.pk)
            events.changed(mailbox.pk)
        Mailbox.objects.filter(pk__in=[m.pk for m in mailboxes]).update(
            used_bytes=F("used_bytes") + size)
        outbound_id = None
        if remote:
            outbound = OutboundMessage.objects.create(
                blob_id=key, mail_from=mail_from, sender_id=sender_mailbox_id,
                expires_at=now + timedelta(seconds=settings.OUTBOUND_LIFETIME))
            OutboundRecipient.objects.bulk_create(
                OutboundRecipient(message=outbound, address=a, next_attempt_at=now)
                for a in remote)
            outbound_id = outbound.pk
            transaction.on_commit(lambda: _kick(outbound.pk))
    return Delivered(key, message_ids, outbound_id)


def _kick(outbound_id: int) -> None:
    """Ask the worker to try a newly queued message now (the sweep finds it otherwise)."""
    from mailcore.tasks import deliver_outbound

    try:
        deliver_outbound.delay([outbound_id])
    except Exception:  # the broker being down must not fail an accepted message
        log.warning("could not notify the worker of outbound message %d", outbound_id,
                    exc_info=True)
