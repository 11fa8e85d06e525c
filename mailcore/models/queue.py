"""Outbound queue tables: an accepted message waiting to leave, and its recipients' states."""

from __future__ import annotations

from django.db import models


class OutboundMessage(models.Model):
    blob = models.ForeignKey("mailcore.Blob", on_delete=models.PROTECT, related_name="outbound")
    mail_from = models.CharField(max_length=320, blank=True, help_text="Empty for a bounce.")
    sender = models.ForeignKey(
        "mailcore.Mailbox", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="outbound",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.pk} from <{self.mail_from}>"


class OutboundRecipient(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    message = models.ForeignKey(
        OutboundMessage, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=320)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="outbound_due")]

    def __str__(self) -> str:
        return f"<{self.address}> {self.state}"
