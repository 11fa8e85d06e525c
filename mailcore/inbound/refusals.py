"""The mail refused at the end of DATA, kept per recipient domain for its owner to see."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from mailcore import dbpool
from mailcore.models import Domain, Refusal


def record(recipients: list[str], sender: str, client_ip: str, temporary: bool,
           reason: str) -> int:
    """Keep one row per hosted domain among the recipients; return how many."""
    by_domain: dict[str, list[str]] = {}
    for address in recipients:
        by_domain.setdefault(address.rpartition("@")[2].lower(), []).append(address)
    domains = Domain.objects.receiving().filter(name__in=by_domain).values_list("pk", "name")
    now = timezone.now()
    rows = [Refusal(domain_id=pk, at=now, sender=sender[:254], client_ip=client_ip[:45],
                    recipients=", ".join(by_domain[name])[:2000], temporary=temporary,
                    reason=reason[:500]) for pk, name in domains]
    with dbpool.writing(durable=False):
        Refusal.objects.bulk_create(rows)
    return len(rows)


def recent(domain: Domain, limit: int = 200) -> list[Refusal]:
    """Return a domain's refusals of the last INBOUND_REFUSALS_DAYS days, newest first."""
    since = timezone.now() - timedelta(days=settings.INBOUND_REFUSALS_DAYS)
    return list(Refusal.objects.for_domain(domain.pk).filter(at__gte=since)[:limit])


def prune() -> int:
    """Delete refusals older than INBOUND_REFUSALS_DAYS days; return how many."""
    before = timezone.now() - timedelta(days=settings.INBOUND_REFUSALS_DAYS)
    deleted, _ = Refusal.objects.filter(at__lt=before).delete()
    return deleted
