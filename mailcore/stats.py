"""Operator statistics: hourly traffic counters, and the read-side queries of the dashboard.

What each series counts: received, every message accepted on port 25; sent, every message
a mailbox submits (submission, webmail), whether to local or remote recipients; system,
the mail the system sends itself (DSNs, notices, vacation replies, the panel's mail);
bounced, outbound recipients that failed for good; rejected, recipients refused at RCPT.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Min, Q, QuerySet, Sum
from django.utils import timezone

from mailcore import dbpool
from mailcore.models import (
    Alias,
    Domain,
    Mailbox,
    OutboundRecipient,
    SenderCount,
    TrafficCount,
)

# The traffic the charts show, and (counted beside it) inbound mail on port 25 by verdict.
KINDS = ["received", "sent", "system", "bounced", "rejected"]
VERDICTS = ["inbox", "junk", "rejected", "deferred", "unscanned"]
LABELS = dict(TrafficCount.Kind.choices)
_ALL_KINDS = {k.value for k in TrafficCount.Kind}


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def record(kind: str, n: int = 1) -> None:
    """Add n to this hour's counter of kind (TrafficCount.Kind: traffic, or a verdict)."""
    if kind not in _ALL_KINDS:
        raise ValueError(f"unknown traffic kind {kind!r}")
    if n > 0:
        _add(TrafficCount, {"hour": _hour(timezone.now()), "kind": kind}, n)


def record_submission(mailbox_id: int) -> None:
    """Count one message a mailbox submitted: in the 'sent' series and as its own."""
    record(TrafficCount.Kind.SENT)
    _add(SenderCount, {"hour": _hour(timezone.now()), "mailbox_id": mailbox_id}, 1)


def _add(model: type[TrafficCount] | type[SenderCount], key: dict, n: int) -> None:
    rows = model.objects.filter(**key)
    if rows.update(count=F("count") + n):
        return
    try:
        # A savepoint, so that losing the race to another process leaves the caller's
        # transaction usable for the update below.
        with transaction.atomic():
            model.objects.create(**key, count=n)
    except IntegrityError:
        rows.update(count=F("count") + n)


class Tally:
    """Counters a busy process keeps in memory and writes every few seconds.

    The SMTP listener counts here rather than writing a row per message; the listener
    process flushes the tally on a timer and at shutdown.
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._counts[kind] += n

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        for kind, n in counts.items():
            with dbpool.writing():
                record(kind, n)


tally = Tally()


# Traffic series -------------------------------------------------------------------------------

@dataclass
class Series:
    """Counts per kind over consecutive buckets (hours or days), oldest first."""

    labels: list[datetime] | list[date]
    counts: dict[str, list[int]]

    @property
    def totals(self) -> dict[str, int]:
        return {kind: sum(values) for kind, values in self.counts.items()}


def hourly(hours: int = 48, now: datetime | None = None) -> Series:
    """Return the counters of each of the last hours, the current hour last."""
    return _hours(hours, now)


def _hours(count: int, now: datetime | None) -> Series:
    end = _hour(now or timezone.now())
    hours = [end - timedelta(hours=i) for i in range(count - 1, -1, -1)]
    index = {h: i for i, h in enumerate(hours)}
    counts = {kind: [0] * len(hours) for kind in KINDS}
    rows = TrafficCount.objects.filter(hour__gte=hours[0]).values_list("hour", "kind", "count")
    for hour, kind, count in rows:
        i = index.get(_hour(hour.astimezone(end.tzinfo)))
        if i is not None and kind in counts:
            counts[kind][i] += count
    return Series(hours, counts)


def daily(days: int = 30, now: datetime | None = None) -> Series:
    """Return the counters summed per (UTC) day for the last days, today last."""
    per_hour = _hours((days + 1) * 24, now)
    today = per_hour.labels[-1].date()
    labels = [today - timedelta(days=i) for i in range(days - 1, -1, -1)]
    index = {d: i for i, d in enumerate(labels)}
    counts = {kind: [0] * days for kind in KINDS}
    for position, hour in enumerate(per_hour.labels):
        i = index.get(hour.date())
        if i is None:
            continue
        for kind in KINDS:
            counts[kind][i] += per_hour.counts[kind][position]
    return Series(labels, counts)


def verdicts(days: int = 7) -> dict[str, int]:
    """Return how many inbound messages got each verdict over the last days (VERDICTS)."""
    since = _hour(timezone.now()) - timedelta(days=days)
    rows = (TrafficCount.objects.filter(hour__gt=since, kind__in=VERDICTS)
            .values_list("kind").annotate(total=Sum("count")))
    found = dict(rows)
    return {kind: found.get(kind, 0) for kind in VERDICTS}


# Totals and the queue -------------------------------------------------------------------------

@dataclass
class Totals:
    customers: int
    domains: int
    unverified_domains: int
    mailboxes: int
    aliases: int
    storage_bytes: int


def totals() -> Totals:
    domains = Domain.objects.aggregate(
        all=Count("pk"), unverified=Count("pk", filter=Q(verified_at__isnull=True)))
    return Totals(
        customers=get_user_model().objects.filter(is_staff=False, is_active=True).count(),
        domains=domains["all"],
        unverified_domains=domains["unverified"],
        mailboxes=Mailbox.objects.count(),
        aliases=Alias.objects.count(),
        storage_bytes=Mailbox.objects.aggregate(total=Sum("used_bytes"))["total"] or 0,
    )


@dataclass
class QueueState:
    depth: int
    messages: int
    oldest: datetime | None


def queue_state() -> QueueState:
    """Return how many recipients wait in the outbound queue, and since when the oldest."""
    pending = OutboundRecipient.objects.pending()
    summary = pending.aggregate(depth=Count("pk"),
                                messages=Count("message", distinct=True),
                                oldest=Min("message__created_at"))
    return QueueState(summary["depth"], summary["messages"], summary["oldest"])


def oldest_queued(limit: int = 10) -> QuerySet[OutboundRecipient]:
    return (OutboundRecipient.objects.pending().select_related("message")
            .order_by("message__created_at", "pk")[:limit])


def storage_by_domain(limit: int = 20) -> QuerySet[Domain]:
    """Return the domains using the most storage, annotated with storage and mailbox counts."""
    return (Domain.objects.select_related("owner")
            .annotate(storage=Sum("mailboxes__used_bytes"), mailbox_count=Count("mailboxes"))
            .order_by(F("storage").desc(nulls_last=True), "name")[:limit])


def recent_failures(limit: int = 20) -> QuerySet[OutboundRecipient]:
    """Return the latest recipients that failed for good, with the remote server's reply."""
    return (OutboundRecipient.objects.filter(state=OutboundRecipient.State.FAILED)
            .select_related("message", "message__sender", "message__sender__domain")
            .order_by("-updated_at", "-pk")[:limit])


def busiest_senders(hours: int = 24, limit: int = 10) -> list[tuple[Mailbox, int]]:
    """Return the mailboxes that submitted the most messages (to anyone) in the last hours.

    The counters are hourly: the current hour and the hours - 1 before it.
    """
    since = _hour(timezone.now()) - timedelta(hours=hours - 1)
    rows = (SenderCount.objects.filter(hour__gte=since).values("mailbox")
            .annotate(n=Sum("count")).order_by("-n", "mailbox")[:limit])
    counts = {row["mailbox"]: row["n"] for row in rows}
    mailboxes = Mailbox.objects.select_related("domain").in_bulk(list(counts))
    return [(mailboxes[pk], n) for pk, n in counts.items() if pk in mailboxes]
