"""Sender rules: which addresses a principal may send as (RFC 6409 section 6.1)."""

from __future__ import annotations

from enum import Enum

from django.db.models import TextField
from django.db.models.functions import Cast

from mailcore import directory
from mailcore.addresses import AddressError, split_address
from mailcore.models import Alias, Domain
from mailcore.principal import Principal


class SenderProblem(Enum):
    """Why a principal may not send as an address."""

    NOT_YOURS = "not yours"
    DOMAIN_NOT_VERIFIED = "domain not verified"


def sender_problem(principal: Principal, address: str) -> SenderProblem | None:
    """Return why this principal may not send as address, or None when it may.

    It may use its own address, or an exact alias whose expansion delivers to it (RFC 6409
    section 6.1). A catch-all does not count: it would let one mailbox pose as every
    unused name of its domain. Nothing is sent for a domain nobody has proven to own:
    not from its mailboxes, and not as its addresses.
    """
    try:
        local, domain = split_address(address)
    except AddressError:
        return SenderProblem.NOT_YOURS
    # Read afresh, not from what the session knew at login: the gate must not trust a
    # stale row (and the mailbox's own domain decides before any address does).
    own = (Domain.objects.filter(pk=principal.domain_id)
           .values("verified_at", "is_active", "owner_id").first())
    if own is None or not own["is_active"]:
        return SenderProblem.NOT_YOURS
    if own["verified_at"] is None:
        return SenderProblem.DOMAIN_NOT_VERIFIED
    if f"{local}@{domain}" == principal.address:
        return None
    if not Domain.objects.receiving().filter(name=domain).exists():
        # Naming the reason is safe only for the sender's own claims: it must not tell
        # anyone that another customer holds a claim on the name.
        owner = own["owner_id"]
        if owner is not None and Domain.objects.pending().filter(name=domain,
                                                                 owner_id=owner).exists():
            return SenderProblem.DOMAIN_NOT_VERIFIED
        return SenderProblem.NOT_YOURS
    alias = Alias.objects.filter(domain__name=domain, domain__verified_at__isnull=False,
                                 local_part=local, is_active=True).first()
    if alias is None:
        return SenderProblem.NOT_YOURS
    if directory.alias_reaches(alias, f"{local}@{domain}", principal.mailbox_id):
        return None
    return SenderProblem.NOT_YOURS


def may_send_as(principal: Principal, address: str) -> bool:
    """Return whether this principal may send as address (see sender_problem)."""
    return sender_problem(principal, address) is None


def sender_addresses(principal: Principal) -> list[str]:
    """Return the addresses this principal may send as: its own, then its aliases."""
    own = principal.address
    aliases = (Alias.objects.filter(is_active=True).exclude(local_part="")
               .annotate(text=Cast("destinations", TextField()))
               .filter(text__icontains=own).select_related("domain")
               .order_by("domain__name", "local_part"))
    found = [own]
    for alias in aliases[:50]:
        address = f"{alias.local_part}@{alias.domain.name}"
        if address != own and may_send_as(principal, address):
            found.append(address)
    return found
