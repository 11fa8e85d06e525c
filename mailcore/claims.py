"""Domain claims: customers' unproven claims on a name, proving one, ending the others.

Typing a name in the panel only claims it. Any number of customers may hold a pending
claim on one name (one each), and none of them receives, sends or logs in for it; the
first to publish their own claim's TXT token proves ownership and gets the name. The
other claims then end (deleted with their mailboxes and aliases, the owner told by
mail), as they do when an operator adds the name, or when DOMAIN_CLAIM_DAYS pass unproven.
So the first to type a name never blocks its real owner, and nobody learns from the
panel whether someone else holds it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from mailcore.models import Domain

log = logging.getLogger("mailcore.claims")

PROVEN_ELSEWHERE = "another account proved ownership of the domain"
ADDED_BY_OPERATOR = "the domain was added by the operator"


class ClaimRefused(ValueError):
    """A claim cannot be verified; the text is safe to show its owner."""


def _refusal(name: str) -> ClaimRefused:
    # Neutral on purpose: it does not say whether another account holds the name.
    return ClaimRefused(f"We could not verify {name} for your account. "
                        "Please contact support.")


def prove(domain: Domain) -> bool:
    """Mark a claim verified and end every other pending claim on its name.

    Return whether it was not verified already. Raise ClaimRefused when another account
    holds the name verified (an operator decides; mail data never moves by itself) or
    when the claim itself has ended meanwhile.
    """
    try:
        with transaction.atomic():
            if Domain.objects.verified().filter(name=domain.name).exclude(pk=domain.pk).exists():
                log.info("domain %s: claim %d proven but the name is held", domain.name,
                         domain.pk)
                raise _refusal(domain.name)
            # Two proofs at once: the unique constraint on verified names lets one win.
            updated = Domain.objects.filter(pk=domain.pk, verified_at__isnull=True).update(
                verified_at=timezone.now())
            if not updated and not Domain.objects.filter(pk=domain.pk).exists():
                raise _refusal(domain.name)
            if updated:
                end_pending(domain.name, PROVEN_ELSEWHERE, keep=domain)
    except IntegrityError as exc:
        raise _refusal(domain.name) from exc
    domain.refresh_from_db(fields=["verified_at"])
    if updated:
        log.info("domain %s verified (claim %d)", domain.name, domain.pk)
    return bool(updated)


def end_pending(name: str, reason: str, keep: Domain | None = None) -> int:
    """Delete the pending claims on name (but keep) with their data; tell each owner why."""
    claims = Domain.objects.pending().filter(name=name).select_related("owner")
    if keep is not None:
        claims = claims.exclude(pk=keep.pk)
    return _end(list(claims), reason)


def expire(now: datetime | None = None) -> int:
    """Delete the pending claims older than DOMAIN_CLAIM_DAYS, telling each owner."""
    days = settings.DOMAIN_CLAIM_DAYS
    cutoff = (now or timezone.now()) - timedelta(days=days)
    claims = list(Domain.objects.pending().filter(created_at__lt=cutoff).select_related("owner"))
    return _end(claims, f"ownership was not proven within {days} days")


@transaction.atomic
def _end(claims: list[Domain], reason: str) -> int:
    for claim in claims:
        # Cascades to its mailboxes (with folders and mail) and aliases; blobs are
        # collected later, as for any removed domain.
        claim.delete()
        log.info("domain %s: pending claim of %s ended: %s", claim.name,
                 claim.owner.email if claim.owner else "nobody", reason)
        if claim.owner is not None and claim.owner.email:
            address, name = claim.owner.email, claim.name
            transaction.on_commit(lambda a=address, n=name: _notify(a, n, reason))
    return len(claims)


def _notify(address: str, name: str, reason: str) -> None:
    body = (f"Your pending claim for {name} ended: {reason}.\n\n"
            f"Its mailboxes and aliases were deleted with it. If {name} is yours, add it "
            "again in the panel and publish its ownership TXT record, or contact support.\n")
    sent = send_mail(f"Your pending claim for {name} ended", body, None, [address],
                     fail_silently=True)
    if not sent:
        log.warning("could not send the notice about %s to %s", name, address)
