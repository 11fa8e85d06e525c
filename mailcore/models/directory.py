"""Directory tables: hosted domains, their mailboxes, and aliases (with catch-alls)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q


def _verification_token() -> str:
    return secrets.token_hex(16)


class DomainQuerySet(models.QuerySet):
    def active(self) -> DomainQuerySet:
        return self.filter(is_active=True)

    def verified(self) -> DomainQuerySet:
        """Proven (or operator-added) domains: at most one per name, the one mail uses."""
        return self.filter(verified_at__isnull=False)

    def pending(self) -> DomainQuerySet:
        """Customers' claims not yet proven: any number per name, none used for mail."""
        return self.filter(verified_at__isnull=True)

    def receiving(self) -> DomainQuerySet:
        """Domains that accept and send mail: active, and verified (an operator's at once)."""
        return self.active().verified()

    def visible_to(self, user) -> DomainQuerySet:
        return self if user.is_staff else self.filter(owner=user)


class Domain(models.Model):
    # Not unique: several customers may hold pending claims on one name; only one row per
    # name is ever verified (the constraint below), and mail looks up that one only.
    name = models.CharField(max_length=253, db_index=True, help_text="Lower-case, IDNA form.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="domains",
    )
    is_active = models.BooleanField(default=True)
    verification_token = models.CharField(max_length=64, default=_verification_token)
    verified_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When ownership was proven; mail is received only once this is set.",
    )
    class SpamSensitivity(models.TextChoices):
        RELAXED = "relaxed", "Relaxed: only obvious spam is filed to Junk or refused"
        NORMAL = "normal", "Normal"
        STRICT = "strict", "Strict: doubtful mail goes to Junk too"

    class DmarcReject(models.TextChoices):
        FOLLOW = "reject", "Refuse it, as the sender's domain asks"
        QUARANTINE = "quarantine", "Deliver it to the Junk folder instead"

    dkim_selector = models.CharField(max_length=63, default="mail")
    dkim_private_key = models.TextField(blank=True, help_text="PEM, RSA 2048.")
    # Inbound mail whose sender's DMARC policy (RFC 7489) says p=reject and that fails it.
    dmarc_reject = models.CharField(
        "mail the sender's DMARC policy rejects", max_length=16,
        choices=DmarcReject.choices, default=DmarcReject.FOLLOW)
    # Spam filtering (mailcore/inbound/spam.py): Rspamd's score thresholds for this domain's
    # mail, and whether Rspamd's "greylist" action defers mail (451 4.7.1) or is let through.
    spam_sensitivity = models.CharField(
        max_length=16, choices=SpamSensitivity.choices, default=SpamSensitivity.NORMAL)
    greylisting = models.BooleanField(
        "greylisting", default=True,
        help_text="Ask unknown senders whose mail looks doubtful to try again later.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DomainQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["name"], condition=Q(verified_at__isnull=False),
                name="domain_unique_verified_name",
                violation_error_message="A verified domain of this name exists already."),
            models.UniqueConstraint(
                fields=["name", "owner"], condition=Q(verified_at__isnull=True),
                name="domain_unique_pending_claim",
                violation_error_message="This owner has a pending claim on this name already."),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def claim_expires_at(self) -> datetime | None:
        """Return when this pending claim is dropped unless proven (None once verified)."""
        if self.verified_at is not None or self.created_at is None:
            return None
        return self.created_at + timedelta(days=settings.DOMAIN_CLAIM_DAYS)


class MailboxQuerySet(models.QuerySet):
    def for_domain(self, domain: Domain) -> MailboxQuerySet:
        return self.filter(domain=domain)

    def by_address(self, address: str) -> MailboxQuerySet:
        """Return the mailbox at address in its verified domain (pending claims' never)."""
        local, _, domain = address.rpartition("@")
        return self.filter(local_part=local.lower(), domain__name=domain.lower(),
                           domain__verified_at__isnull=False)


class Mailbox(models.Model):
    class Pop3Policy(models.TextChoices):
        DELETE = "delete", "Honour deletes"
        KEEP = "keep", "Keep the server copy"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="mailboxes")
    local_part = models.CharField(max_length=64)
    display_name = models.CharField(max_length=200, blank=True)
    password_hash = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=True)
    quota_bytes = models.BigIntegerField(help_text="0 means unlimited.")
    used_bytes = models.BigIntegerField(default=0)
    pop3_policy = models.CharField(
        max_length=10, choices=Pop3Policy.choices, default=Pop3Policy.DELETE,
        help_text="What a POP3 DELE does: delete the message, or keep the server copy "
        "(marked seen and hidden from later POP3 listings).",
    )
    send_limit_per_hour = models.PositiveIntegerField(
        default=200, help_text="Messages this mailbox may submit per hour (0: no limit).")
    max_recipients = models.PositiveIntegerField(
        default=100, help_text="Recipients per submitted message.")
    last_uidvalidity = models.BigIntegerField(
        default=0, editable=False,
        help_text="The last UIDVALIDITY given to a folder; never handed out twice.")
    pop3_lock = models.CharField(max_length=64, blank=True, editable=False)
    pop3_lock_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MailboxQuerySet.as_manager()

    class Meta:
        ordering = ["domain__name", "local_part"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="mailbox_unique_address"),
        ]
        verbose_name_plural = "mailboxes"

    def __str__(self) -> str:
        return self.address

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"

    def is_over_quota(self, extra: int = 0) -> bool:
        """Return whether storing extra more bytes would go over the quota."""
        return bool(self.quota_bytes) and self.used_bytes + extra > self.quota_bytes

    def is_full(self) -> bool:
        return bool(self.quota_bytes) and self.used_bytes >= self.quota_bytes


class AliasQuerySet(models.QuerySet):
    def for_domain(self, domain: Domain) -> AliasQuerySet:
        return self.filter(domain=domain)

    def matching(self, local_part: str, domain_name: str) -> AliasQuerySet:
        """Return the exact alias and the catch-all for an address, exact first.

        Only the verified domain's: a pending claim on the same name never takes mail.
        """
        return self.filter(
            Q(local_part=local_part.lower()) | Q(local_part=""),
            domain__name=domain_name.lower(), domain__verified_at__isnull=False, is_active=True,
        ).order_by("-local_part")


class Alias(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="aliases")
    local_part = models.CharField(
        max_length=64, blank=True, help_text="Empty for the domain's catch-all.",
    )
    destinations = models.JSONField(
        default=list, help_text="Addresses this alias delivers to, local or remote.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AliasQuerySet.as_manager()

    class Meta:
        ordering = ["domain__name", "local_part"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="alias_unique_address"),
        ]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return self.address

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"

    @property
    def is_catch_all(self) -> bool:
        return not self.local_part
