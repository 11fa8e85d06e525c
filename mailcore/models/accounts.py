"""Account tables: app passwords of a mailbox, and an operator's limits per customer."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AppPasswordQuerySet(models.QuerySet):
    def for_mailbox(self, mailbox) -> AppPasswordQuerySet:
        return self.filter(mailbox=mailbox)


class AppPassword(models.Model):
    """A named, revocable password for one mail client (SMTP, POP3, IMAP), shown once."""

    mailbox = models.ForeignKey("mailcore.Mailbox", on_delete=models.CASCADE,
                                related_name="app_passwords")
    name = models.CharField(max_length=100)
    password_hash = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = AppPasswordQuerySet.as_manager()

    class Meta:
        ordering = ["mailbox", "name"]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.name}"


class CustomerLimits(models.Model):
    """What an operator allows one customer; 0 means no limit."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="mail_limits")
    max_domains = models.PositiveIntegerField(default=5)
    max_mailboxes = models.PositiveIntegerField(default=50)
    max_storage_bytes = models.BigIntegerField(default=20 * 1024 ** 3)

    class Meta:
        verbose_name_plural = "customer limits"

    def __str__(self) -> str:
        return f"limits for {self.user}"
