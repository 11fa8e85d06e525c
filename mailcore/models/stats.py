"""Traffic statistics: messages received, sent, sent by the system, bounced and rejected per
hour, and messages each mailbox sent per hour."""

from __future__ import annotations

from django.db import models


class TrafficCount(models.Model):
    class Kind(models.TextChoices):
        RECEIVED = "received", "Received"
        SENT = "sent", "Sent"
        SYSTEM = "system", "System mail"
        BOUNCED = "bounced", "Bounced"
        REJECTED = "rejected", "Rejected"
        # Inbound mail on port 25 by verdict (with REJECTED above: refused with 550).
        INBOX = "inbox", "Delivered to the inbox"
        JUNK = "junk", "Filed to Junk"
        DEFERRED = "deferred", "Deferred (451)"
        UNSCANNED = "unscanned", "Not scanned for spam"

    hour = models.DateTimeField(help_text="Start of the hour (UTC).")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-hour", "kind"]
        constraints = [models.UniqueConstraint(fields=["hour", "kind"], name="traffic_unique")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.kind} {self.count}"


class SenderCount(models.Model):
    """Messages one mailbox submitted in one hour, to any recipients (local or remote)."""

    hour = models.DateTimeField(help_text="Start of the hour (UTC).")
    mailbox = models.ForeignKey("mailcore.Mailbox", on_delete=models.CASCADE,
                                related_name="sender_counts")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hour", "mailbox"],
                                               name="sender_count_unique")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 mailbox {self.mailbox_id} {self.count}"
