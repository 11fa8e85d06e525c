"""Celery tasks: the worker's periodic jobs over the store."""

from __future__ import annotations

import logging

from celery import shared_task

from mailcore.store.blobs import collect_orphans

log = logging.getLogger("mailcore.tasks")


@shared_task
def collect_orphan_blobs() -> int:
    """Remove blobs no message or queue entry has pointed at for an hour."""
    removed = collect_orphans(grace_seconds=3600)
    if removed:
        log.info("collected %d orphan blobs", removed)
    return removed


@shared_task(acks_late=True)
def deliver_outbound(message_ids: list[int]) -> None:
    """Try the due recipients of these queued messages once."""
    from mailcore.queue.attempts import attempt

    attempt(message_ids)


@shared_task
def sweep_outbound() -> int:
    """Hand every message with recipients due for another attempt to the workers."""
    from mailcore.queue.attempts import due_message_ids

    ids = due_message_ids()
    for start in range(0, len(ids), 20):
        deliver_outbound.delay(ids[start:start + 20])
    return len(ids)


@shared_task(acks_late=True)
def remove_domain_data(domain_id: int) -> bool:
    """Delete a domain its customer removed (already deactivated) with all its data."""
    from mailcore.customers import remove_domain_data as remove

    return remove(domain_id)


@shared_task
def expire_domain_claims() -> int:
    """Drop customers' domain claims left unproven for DOMAIN_CLAIM_DAYS, telling them."""
    from mailcore.claims import expire

    ended = expire()
    if ended:
        log.info("ended %d expired domain claims", ended)
    return ended


@shared_task(acks_late=True)
def vacation_reply(mailbox_id: int, blob_key: str, envelope_sender: str) -> str:
    """Send a mailbox's vacation auto-reply to the sender of a message it just received."""
    from mailcore.sending.vacation import answer
    from mailcore.store.blobs import blob_store

    return answer(mailbox_id, blob_store().get(blob_key), envelope_sender)
