"""Celery tasks: the worker's jobs, and the hooks that schedule them (installed at start-up).

The layers below (store, queue, customer services) never import this module; they call
mailcore.hooks, which MailcoreConfig.ready points at HOOKS here.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from mailcore import claims, hooks, selfservice
from mailcore.inbound import refusals, rspamd
from mailcore.queue import wake
from mailcore.queue.attempts import attempt, drain
from mailcore.sending import vacation
from mailcore.store.blobs import blob_store, collect_orphans
from mailcore.store.folders import INBOX

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
    """Try the due recipients of these queued messages once (tasks published before the
    workers were woken by drain_outbound; still run, never lost at an upgrade)."""
    attempt(message_ids)


@shared_task(acks_late=True)
def drain_outbound() -> int:
    """Deliver a batch of the queue's due recipients; hand on the rest to another drain.

    acks_late: a worker killed mid-batch has its task given to another worker, which finds
    the dead one's recipients leased until OUTBOUND_LEASE runs out, then tries them again.
    """
    return drain(settings.OUTBOUND_DRAIN_BATCH, more=drain_outbound.delay,
                 gather=settings.OUTBOUND_GATHER)


@shared_task
def sweep_outbound() -> int:
    """Drain the queue of recipients due for another attempt (retries, lost wake-ups)."""
    return drain_outbound()


@shared_task(acks_late=True)
def remove_domain_data(domain_id: int) -> bool:
    """Delete a domain its customer removed (already deactivated) with all its data."""
    return selfservice.remove_domain_data(domain_id)


@shared_task
def expire_domain_claims() -> int:
    """Drop customers' domain claims left unproven for DOMAIN_CLAIM_DAYS, telling them."""
    ended = claims.expire()
    if ended:
        log.info("ended %d expired domain claims", ended)
    return ended


@shared_task(acks_late=True)
def vacation_reply(mailbox_id: int, blob_key: str, envelope_sender: str) -> str:
    """Send a mailbox's vacation auto-reply to the sender of a message it just received."""
    return vacation.answer(mailbox_id, blob_store().get(blob_key), envelope_sender)


@shared_task(bind=True, acks_late=True, max_retries=12)
def learn(self, blob_keys: list[str], spam: bool) -> int:
    """Teach Rspamd's controller that these messages are spam (or ham); return how many it
    learned. Rspamd unreachable: try again later, backing off up to an hour."""
    store = blob_store()
    learned = 0
    for key in blob_keys:
        try:
            raw = store.get(key)
        except FileNotFoundError:  # deleted for good meanwhile: nothing to learn from
            continue
        try:
            learned += rspamd.learn("spam" if spam else "ham", raw)
        except rspamd.Unavailable as exc:
            raise self.retry(exc=exc, countdown=min(60 * 2 ** self.request.retries, 3600)) from exc
    return learned


@shared_task
def prune_refusals() -> int:
    """Forget refused mail older than INBOUND_REFUSALS_DAYS days."""
    return refusals.prune()


# Hooks: the work the lower layers ask for, scheduled on the worker ---------------------------

def _answer_arrival(arrival: hooks.Arrival) -> None:
    """Ask the worker to answer for the mailboxes whose vacation reply is on."""
    # Nor for junk: answering spam sends mail to forged senders (backscatter).
    if not arrival.mail_from or arrival.folder != INBOX or arrival.junk:
        return
    for mailbox_id in vacation.away(arrival.mailbox_ids):
        try:
            vacation_reply.delay(mailbox_id, arrival.blob_key, arrival.mail_from)
        except Exception:  # the broker being down must not fail an accepted message
            log.warning("could not queue the vacation reply of mailbox %d", mailbox_id,
                        exc_info=True)


def _learn(judgement: hooks.Judged) -> None:
    """Ask the worker to teach Rspamd, if there is a controller to teach."""
    if settings.RSPAMD_CONTROLLER_URL and judgement.blob_keys:
        learn.delay(judgement.blob_keys, judgement.spam)


def _deliver_outbound(message_ids: list[int]) -> None:
    """Wake the workers for newly due mail: one drain for the whole queue, if none is asked
    for already (mailcore.queue.wake), instead of a task per message."""
    if not wake.ask():
        return
    try:
        drain_outbound.delay()
    except BaseException:
        wake.cancel()  # the next message asks again; the sweep drains the queue anyway
        raise


def _remove_domain_data(domain_id: int) -> None:
    remove_domain_data.delay(domain_id)


HOOKS = hooks.Hooks(arrived=_answer_arrival, outbound_due=_deliver_outbound,
                    domain_deactivated=_remove_domain_data, judged=_learn)
