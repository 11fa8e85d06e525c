"""Spam filtering tables: each mailbox's sender lists, and the mail refused per domain."""

from __future__ import annotations

from django.db import models


class SenderRuleQuerySet(models.QuerySet):
    def for_mailbox(self, mailbox_id: int) -> SenderRuleQuerySet:
        return self.filter(mailbox_id=mailbox_id)


class SenderRule(models.Model):
    """An address or a whole domain a mailbox always accepts, or always refuses."""

    class Kind(models.TextChoices):
        ALLOW = "allow", "Always allow"
        BLOCK = "block", "Always block"

    mailbox = models.ForeignKey("mailcore.Mailbox", on_delete=models.CASCADE,
                                related_name="sender_rules")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    # "someone@example.com", or "example.com" for everyone there (and its subdomains).
    pattern = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SenderRuleQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "pattern"]
        constraints = [models.UniqueConstraint(fields=["mailbox", "pattern"],
                                               name="sender_rule_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.pattern}"


class RefusalQuerySet(models.QuerySet):
    def for_domain(self, domain_id: int) -> RefusalQuerySet:
        return self.filter(domain_id=domain_id)


class Refusal(models.Model):
    """A message refused (or deferred) at the end of DATA for one of a domain's addresses.

    Kept INBOUND_REFUSALS_DAYS days, so a domain's owner can answer "my customer's mail
    never arrived"; the beat job prune_refusals removes older ones.
    """

    domain = models.ForeignKey("mailcore.Domain", on_delete=models.CASCADE,
                               related_name="refusals")
    at = models.DateTimeField(db_index=True)
    sender = models.CharField(max_length=254, blank=True)  # the envelope sender
    recipients = models.TextField()  # the domain's addresses it was for, comma-separated
    client_ip = models.CharField(max_length=45)
    temporary = models.BooleanField(default=False)  # 451: the sender's server tries again
    reason = models.CharField(max_length=500)

    objects = RefusalQuerySet.as_manager()

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["domain", "-at"], name="refusal_domain_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} <{self.sender}>: {self.reason}"
