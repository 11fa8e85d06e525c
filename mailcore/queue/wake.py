"""Waking the workers for queued mail: one drain asked at a time, however much mail arrives.

A Celery task per queued message cost more than sending the message (on the embedded
broker a file written, listed and read per task, and a claim per task), so mail that
arrives one message at a time asks for a drain of the whole queue instead, and only when
none is already asked for. The flag is a row in the database (OutboundWake), so it works
alike on the embedded default and in production, across mailcore, web and worker nodes.

Why no message is stranded: a message is committed before its sender calls ask(); a
drain calls begin() before it claims. If ask() sees the flag set, the drain that set it
has not begun, so its claim comes after that commit and takes the message.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from mailcore import dbpool
from mailcore.models import OutboundWake

# A drain asked for this long ago and not begun is taken as lost (a broker that dropped
# it); the next message asks again. The periodic sweep drains the queue as well.
STALE = timedelta(seconds=60)
ROW = 1


def ask() -> bool:
    """Mark a drain as asked for; return whether the caller must publish one.

    False while an earlier drain is asked for and has not begun: that one will take this
    caller's mail. Costs one read while a drain is pending, the common case under load.
    Called after a commit, often with SQLite's writer lock still held (delivery's
    on_commit), so it writes without dbpool.writing(), which would wait for itself.
    """
    now = timezone.now()
    fresh = Q(kicked_at__gt=now - STALE)
    if OutboundWake.objects.filter(fresh, pk=ROW).exists():
        return False
    if OutboundWake.objects.filter(pk=ROW).exclude(fresh).update(kicked_at=now):
        return True
    # No row yet (a new database), or another caller set it between the two statements.
    _, created = OutboundWake.objects.get_or_create(pk=ROW, defaults={"kicked_at": now})
    return created


def cancel() -> None:
    """Forget the drain this caller asked for but could not publish (the broker is down)."""
    OutboundWake.objects.filter(pk=ROW).update(kicked_at=None)


def begin(gather: float = 0.0) -> None:
    """Say a drain is beginning: mail committed from now on asks for another one.

    gather: a drain asked for within this many seconds of the last one's start waits for
    the rest of them first, so that mail arriving as a stream leaves in batches (a claim,
    a session and a record for several messages instead of one each) while a lone message
    leaves at once. In bench/outbound.py a drain per message or two took the worker
    several times the CPU of the sending and halved the rate mail could be queued at.
    """
    row = OutboundWake.objects.filter(pk=ROW).values_list("kicked_at", "began_at").first()
    if row is None or row[0] is None:
        return  # not woken: a drain handed on by a full one, or the sweep
    began = row[1]
    if began is not None and gather > 0:
        wait = gather - (timezone.now() - began).total_seconds()
        if wait > 0:
            time.sleep(min(wait, gather))
    with dbpool.writing(durable=False):
        OutboundWake.objects.filter(pk=ROW).update(kicked_at=None, began_at=timezone.now())
