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
    # SHA-256 of the secret (passwords.app_password_lookup), so that a login verifies only
    # the row it finds; empty for rows made before it, filled on their next use.
    lookup = models.CharField(max_length=64, blank=True, default="", db_index=True)
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


class MailboxSettings(models.Model):
    """A mailbox user's own settings: signature and the vacation auto-reply."""

    mailbox = models.OneToOneField("mailcore.Mailbox", on_delete=models.CASCADE,
                                   primary_key=True, related_name="settings")
    signature = models.TextField(blank=True)
    vacation_enabled = models.BooleanField(default=False)
    vacation_subject = models.CharField(max_length=200, blank=True,
                                        help_text='Empty: "Auto:" and the original subject.')
    vacation_body = models.TextField(blank=True)
    vacation_start = models.DateField(null=True, blank=True)
    vacation_end = models.DateField(null=True, blank=True, help_text="Inclusive.")
    vacation_interval_days = models.PositiveSmallIntegerField(
        default=7, help_text="Answer each sender at most once in this many days.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "mailbox settings"

    def __str__(self) -> str:
        return f"settings of {self.mailbox_id}"


class VacationReply(models.Model):
    """Whom a mailbox's vacation auto-reply answered, and when."""

    mailbox = models.ForeignKey("mailcore.Mailbox", on_delete=models.CASCADE,
                                related_name="vacation_replies")
    sender = models.CharField(max_length=320)
    replied_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mailbox", "sender"],
                                               name="vacation_reply_unique")]
        indexes = [models.Index(fields=["replied_at"], name="vacation_reply_when")]

    def __str__(self) -> str:
        return f"{self.mailbox_id} -> {self.sender}"
