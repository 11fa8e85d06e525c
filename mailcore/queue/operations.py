"""Operator actions on the outbound queue: retry now, bounce now, delete."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mailcore import hooks
from mailcore.models import OutboundMessage, OutboundRecipient
from mailcore.queue.bounces import notify_senders

log = logging.getLogger("mailcore.queue")

BOUNCED_BY_OPERATOR = "bounced by operator"
BOUNCE_STATUS = "5.0.0"
TASK_BATCH = 20  # messages per worker notification (they wake one drain of the queue)


@dataclass(frozen=True)
class Bounced:
    """How many queued recipients were bounced, and how many a worker held at the time."""

    recipients: int
    in_delivery: int


def retry_now(message_ids: Iterable[int]) -> int:
    """Make these messages' queued recipients due now and ask a worker to try them.

    The lease is cleared as well, so a recipient whose worker died is retried at once
    instead of when the lease runs out; if that worker is in fact alive and still
    talking to the next hop, the recipient may be delivered twice, never lost.
    Return the number of recipients made due. Should the broker be down, the periodic
    sweep finds them due anyway.
    """
    ids = sorted(set(message_ids))
    with transaction.atomic():
        queued = OutboundRecipient.objects.pending().filter(message_id__in=ids)
        due = sorted(set(queued.values_list("message_id", flat=True)))
        count = queued.update(next_attempt_at=timezone.now(), leased_until=None)
        transaction.on_commit(lambda: _publish(due))
    log.info("operator retry messages=%d recipients=%d", len(due), count)
    return count


def _publish(message_ids: list[int]) -> None:
    """Hand the messages to the workers in batches (one connection per domain per batch)."""
    for start in range(0, len(message_ids), TASK_BATCH):
        batch = message_ids[start:start + TASK_BATCH]
        try:
            hooks.outbound_due(batch)
        except Exception:  # the broker being down: the sweep finds them due anyway
            log.warning("could not hand messages %s to the worker", batch, exc_info=True)


def bounce_now(message_ids: Iterable[int]) -> Bounced:
    """Fail these messages' queued recipients for good and send the senders their DSNs.

    A recipient a worker is delivering right now (its lease still runs) is left alone:
    the next hop may be accepting it this very moment, and a DSN saying it failed
    would be wrong. Bounce it again once the attempt is over.
    """
    ids = sorted(set(message_ids))
    now = timezone.now()
    with transaction.atomic():
        queued = OutboundRecipient.objects.pending().filter(message_id__in=ids)
        idle = Q(leased_until__isnull=True) | Q(leased_until__lt=now)
        busy = queued.exclude(idle).count()
        count = queued.filter(idle).update(
            state=OutboundRecipient.State.FAILED, status=BOUNCE_STATUS,
            last_response=BOUNCED_BY_OPERATOR, leased_until=None, updated_at=now)
    log.info("operator bounce messages=%d recipients=%d in_delivery=%d", len(ids), count, busy)
    notify_senders(set(ids))
    return Bounced(count, busy)


def delete(message_ids: Iterable[int]) -> int:
    """Remove these messages and their recipients from the queue, sending no DSN.

    The message's blob stays until the orphan collector finds nothing points at it.
    Return the number of messages removed.
    """
    ids = sorted(set(message_ids))
    _, per_model = OutboundMessage.objects.filter(pk__in=ids).delete()
    count = per_model.get(OutboundMessage._meta.label, 0)
    log.info("operator delete messages=%d", count)
    return count
