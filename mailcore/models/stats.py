"""Traffic statistics: how many messages were received, sent, bounced and rejected per hour."""

from __future__ import annotations

from django.db import models


class TrafficCount(models.Model):
    class Kind(models.TextChoices):
        RECEIVED = "received", "Received"
        SENT = "sent", "Sent"
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
