"""Customer self-service: what a hosting customer may do to their domains and mailboxes.

It wraps the directory with the operator's limits, ownership proof, forwards with a kept
copy, catch-alls, and domain removal (deactivated at once, data deleted by the worker).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Sum

from mailcore import claims, directory, dnscheck, hooks
from mailcore.addresses import AddressError, normalize_address
from mailcore.directory import DirectoryError
from mailcore.models import Alias, CustomerLimits, Domain, Mailbox, Message

log = logging.getLogger("mailcore.selfservice")


class LimitExceeded(DirectoryError):
    """The customer's limits (set by the operator) do not allow this."""


# Limits and usage -----------------------------------------------------------------------------

def limits_for(user) -> CustomerLimits:
    """Return the customer's limits, or the defaults (unsaved) when the operator set none."""
    return CustomerLimits.objects.filter(user=user).first() or CustomerLimits(user=user)


def set_limits(user, max_domains: int, max_mailboxes: int, max_storage_bytes: int
               ) -> CustomerLimits:
    limits, _ = CustomerLimits.objects.update_or_create(user=user, defaults={
        "max_domains": max_domains, "max_mailboxes": max_mailboxes,
        "max_storage_bytes": max_storage_bytes})
    return limits


@dataclass
class Usage:
    domains: int
    mailboxes: int
    allocated_bytes: int   # the sum of the mailboxes' quotas
    used_bytes: int
    unlimited_mailboxes: int  # mailboxes with quota 0


def usage_for(user) -> Usage:
    domains = Domain.objects.filter(owner=user, is_active=True).count()
    summary = Mailbox.objects.filter(domain__owner=user, domain__is_active=True).aggregate(
        n=Count("pk"), allocated=Sum("quota_bytes"), used=Sum("used_bytes"))
    unlimited = Mailbox.objects.filter(domain__owner=user, domain__is_active=True,
                                       quota_bytes=0).count()
    return Usage(domains, summary["n"], summary["allocated"] or 0, summary["used"] or 0,
                 unlimited)


def _check_domain_limit(user) -> None:
    limits = limits_for(user)
    if limits.max_domains and usage_for(user).domains >= limits.max_domains:
        raise LimitExceeded(f"Your plan allows {limits.max_domains} domain(s); "
                            "remove one or ask us to raise the limit.")


def check_quota(user, quota_bytes: int, replacing: Mailbox | None = None) -> None:
    """Raise LimitExceeded unless a mailbox of quota_bytes fits the customer's storage."""
    if quota_bytes < 0:
        raise DirectoryError("A quota cannot be negative.")
    limit = limits_for(user).max_storage_bytes
    if not limit:
        return
    if quota_bytes == 0:
        raise LimitExceeded("Your plan's storage is limited, so every mailbox needs a quota.")
    allocated = usage_for(user).allocated_bytes
    if replacing is not None:
        allocated -= replacing.quota_bytes
    available = max(limit - allocated, 0)
    if quota_bytes > available:
        raise LimitExceeded(f"Only {available // 1024**2} MB of your plan's "
                            f"{limit // 1024**2} MB are left to give to mailboxes.")


def available_storage(user) -> int | None:
    """Return the bytes still free to give to new mailboxes, or None when unlimited."""
    limit = limits_for(user).max_storage_bytes
    if not limit:
        return None
    return max(limit - usage_for(user).allocated_bytes, 0)


def check_can_add_mailbox(user) -> None:
    limits = limits_for(user)
    if limits.max_mailboxes and usage_for(user).mailboxes >= limits.max_mailboxes:
        raise LimitExceeded(f"Your plan allows {limits.max_mailboxes} mailbox(es); "
                            "delete one or ask us to raise the limit.")


# Domains --------------------------------------------------------------------------------------

def add_domain(user, name: str) -> Domain:
    """Add a domain for a customer: a claim until ownership is proven (staff's at once).

    The answer is the same whether or not another account claims or holds the name.
    """
    _check_domain_limit(user)
    return directory.add_domain(name, owner=user, verified=user.is_staff)


def verify_domain(domain: Domain) -> bool:
    """Mark the claim proven, ending the others on its name; return whether it was new.

    Raise claims.ClaimRefused (a neutral text) when another account holds the name.
    """
    return claims.prove(domain)


def check_dns(domain: Domain):
    """Check the domain's published records; prove ownership when its token is there.

    Raise claims.ClaimRefused when the token is there but the name cannot be given.
    """
    report = dnscheck.check(domain)
    if report.ownership_proven and domain.verified_at is None:
        verify_domain(domain)
    return report


@dataclass
class RemovalSummary:
    mailboxes: list[Mailbox]
    aliases: list[Alias]
    messages: int
    storage_bytes: int


def removal_summary(domain: Domain) -> RemovalSummary:
    """Return what removing the domain deletes, for the customer to confirm."""
    mailboxes = list(Mailbox.objects.for_domain(domain).select_related("domain"))
    aliases = list(Alias.objects.for_domain(domain).select_related("domain"))
    messages = Message.objects.filter(folder__mailbox__domain=domain).count()
    storage = sum(m.used_bytes for m in mailboxes)
    return RemovalSummary(mailboxes, aliases, messages, storage)


def request_removal(domain: Domain) -> None:
    """Stop the domain at once (no mail in, no logins); the worker deletes its data later."""
    with transaction.atomic():
        Domain.objects.filter(pk=domain.pk).update(is_active=False)
        domain.is_active = False
        transaction.on_commit(lambda: _enqueue_removal(domain.pk))
    log.info("domain %s deactivated; its data will be removed", domain.name)


def _enqueue_removal(domain_id: int) -> None:
    hooks.domain_deactivated(domain_id)


def remove_domain_data(domain_id: int) -> bool:
    """Delete a deactivated domain with its mailboxes, mail and aliases (the worker's job)."""
    domain = Domain.objects.filter(pk=domain_id).first()
    if domain is None:
        return False
    if domain.is_active:
        # Reactivated by an operator since the customer asked: keep it.
        log.warning("domain %s is active again; not removing its data", domain.name)
        return False
    directory.remove_domain(domain)
    log.info("domain %s removed with its data", domain.name)
    return True


# Mailboxes ------------------------------------------------------------------------------------

def add_mailbox(user, domain: Domain, local_part: str, password: str, display_name: str,
                quota_bytes: int) -> Mailbox:
    """Create a mailbox in the customer's domain, within their limits."""
    check_can_add_mailbox(user)
    check_quota(user, quota_bytes)
    address = f"{local_part}@{domain.name}"
    if Alias.objects.filter(domain=domain, local_part=local_part.strip().lower()).exists():
        raise DirectoryError(f"{address} is already an alias; remove the alias first.")
    return directory.add_mailbox(address, password, display_name=display_name,
                                 quota_bytes=quota_bytes, domain=domain)


def set_mailbox_quota(user, mailbox: Mailbox, quota_bytes: int) -> None:
    check_quota(user, quota_bytes, replacing=mailbox)
    directory.set_quota(mailbox, quota_bytes)


def set_active(mailbox: Mailbox, active: bool) -> None:
    """Enable or disable a mailbox: a disabled one neither logs in nor receives mail."""
    mailbox.is_active = active
    mailbox.save(update_fields=["is_active"])


def message_count(mailbox: Mailbox) -> int:
    return Message.objects.filter(folder__mailbox=mailbox).count()


@transaction.atomic
def remove_mailbox(mailbox: Mailbox) -> None:
    """Delete the mailbox with its mail, and its forward (an alias on its own address)."""
    Alias.objects.filter(domain=mailbox.domain_id, local_part=mailbox.local_part).delete()
    directory.remove_mailbox(mailbox)


def quota_percent(mailbox: Mailbox) -> int | None:
    if not mailbox.quota_bytes:
        return None
    return min(100, round(100 * mailbox.used_bytes / mailbox.quota_bytes))


# Aliases, forwards and catch-alls ----------------------------------------------------------

def _clean_destinations(destinations: list[str]) -> list[str]:
    cleaned: list[str] = []
    for destination in destinations:
        destination = destination.strip()
        if not destination:
            continue
        try:
            address = normalize_address(destination)
        except AddressError as exc:
            raise DirectoryError(f"{destination}: {exc}") from exc
        if address not in cleaned:
            cleaned.append(address)
    if len(cleaned) > 50:
        raise DirectoryError("At most 50 destinations.")
    return cleaned


def add_alias(domain: Domain, local_part: str, destinations: list[str]) -> Alias:
    """Add an alias in the domain; a mailbox's own address is forwarded from its page."""
    local_part = local_part.strip().lower()
    if Mailbox.objects.filter(domain=domain, local_part=local_part).exists():
        raise DirectoryError(f"{local_part}@{domain.name} is a mailbox: set up forwarding "
                             "on the mailbox's page instead.")
    cleaned = _clean_destinations(destinations)
    if not cleaned:
        raise DirectoryError("An alias needs at least one destination.")
    return directory.add_alias(f"{local_part}@{domain.name}", cleaned, domain=domain)


def set_alias_destinations(alias: Alias, destinations: list[str]) -> None:
    cleaned = _clean_destinations(destinations)
    if not cleaned:
        raise DirectoryError("An alias needs at least one destination.")
    directory.set_alias_destinations(alias, cleaned)


@dataclass
class Forward:
    destinations: list[str]
    keep_copy: bool


def get_forward(mailbox: Mailbox) -> Forward:
    """Return where the mailbox's mail is forwarded, and whether it keeps a copy."""
    alias = Alias.objects.filter(domain=mailbox.domain_id, local_part=mailbox.local_part).first()
    if alias is None:
        return Forward([], True)
    own = mailbox.address
    return Forward([d for d in alias.destinations if d != own], own in alias.destinations)


def set_forward(mailbox: Mailbox, destinations: list[str], keep_copy: bool) -> None:
    """Forward the mailbox's mail to destinations, keeping a copy or not; none stops it.

    A forward is an alias on the mailbox's own address; a kept copy is the address itself
    among its destinations (the directory then delivers to the mailbox as well).
    """
    own = mailbox.address
    cleaned = [d for d in _clean_destinations(destinations) if d != own]
    alias = Alias.objects.filter(domain=mailbox.domain_id, local_part=mailbox.local_part).first()
    if not cleaned:
        if alias is not None:
            directory.remove_alias(alias)
        return
    targets = ([own] if keep_copy else []) + cleaned
    if alias is None:
        directory.add_alias(own, targets, domain=mailbox.domain)
    else:
        directory.set_alias_destinations(alias, targets)


def get_catch_all(domain: Domain) -> Alias | None:
    return Alias.objects.filter(domain=domain, local_part="").first()


def set_catch_all(domain: Domain, destinations: list[str]) -> None:
    """Send mail for unknown names of the domain to destinations; none turns it off."""
    cleaned = _clean_destinations(destinations)
    alias = get_catch_all(domain)
    if not cleaned:
        if alias is not None:
            directory.remove_alias(alias)
    elif alias is None:
        directory.add_alias(f"@{domain.name}", cleaned, domain=domain)
    else:
        directory.set_alias_destinations(alias, cleaned)


def set_dmarc_reject(domain: Domain, action: str) -> None:
    """Choose what becomes of inbound mail that its sender's DMARC policy rejects: refused
    ("reject", as the policy asks) or delivered to the recipient's Junk ("quarantine")."""
    if action not in Domain.DmarcReject.values:
        raise DirectoryError("Choose one of the offered actions.")
    Domain.objects.filter(pk=domain.pk).update(dmarc_reject=action)
    domain.dmarc_reject = action


def set_spam_filter(domain: Domain, sensitivity: str, greylisting: bool) -> None:
    """Set a domain's spam sensitivity (Rspamd's thresholds for its mail) and greylisting."""
    if sensitivity not in Domain.SpamSensitivity.values:
        raise DirectoryError("Choose one of the offered sensitivities.")
    Domain.objects.filter(pk=domain.pk).update(spam_sensitivity=sensitivity,
                                               greylisting=greylisting)
    domain.spam_sensitivity, domain.greylisting = sensitivity, greylisting


def forwards_of(domain: Domain) -> set[str]:
    """Return the local parts of the domain's mailboxes that have a forward."""
    mailbox_names = set(Mailbox.objects.for_domain(domain).values_list("local_part", flat=True))
    alias_names = set(Alias.objects.for_domain(domain).values_list("local_part", flat=True))
    return mailbox_names & alias_names
