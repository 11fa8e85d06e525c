"""Outbound queue tables: an accepted message waiting to leave, and its recipients' states."""

from __future__ import annotations

from django.db import models


class OutboundMessage(models.Model):
    class Return(models.TextChoices):
        FULL = "FULL", "Full message"
        HEADERS = "HDRS", "Headers only"

    blob = models.ForeignKey("mailcore.Blob", on_delete=models.PROTECT, related_name="outbound")
    mail_from = models.CharField(max_length=320, blank=True, help_text="Empty for a bounce.")
    sender = models.ForeignKey(
        "mailcore.Mailbox", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="outbound",
    )
    envelope_id = models.CharField(max_length=100, blank=True, help_text="DSN ENVID.")
    dsn_return = models.CharField(max_length=4, choices=Return.choices, default=Return.HEADERS)
    expires_at = models.DateTimeField(null=True, blank=True,
                                      help_text="When undelivered recipients fail for good.")
    system = models.BooleanField(
        default=False, help_text="Sent by the system itself: a DSN, a notice, a vacation "
        "reply or the panel's mail (verification, password reset).")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.pk} from <{self.mail_from}>"


class OutboundRecipientQuerySet(models.QuerySet):
    def pending(self) -> OutboundRecipientQuerySet:
        return self.filter(state=OutboundRecipient.State.QUEUED)


class OutboundRecipient(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    message = models.ForeignKey(
        OutboundMessage, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=320)
    original_recipient = models.CharField(max_length=320, blank=True, help_text="DSN ORCPT.")
    notify = models.CharField(max_length=40, blank=True,
                              help_text="DSN NOTIFY: NEVER, or SUCCESS,FAILURE,DELAY.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is delivering it until then.")
    last_response = models.TextField(blank=True)
    status = models.CharField(max_length=12, blank=True, help_text="Enhanced status code.")
    remote_mta = models.CharField(max_length=255, blank=True)
    delay_notified = models.BooleanField(default=False)
    dsn_sent = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OutboundRecipientQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="outbound_due")]

    def __str__(self) -> str:
        return f"<{self.address}> {self.state}"


class OutboundWake(models.Model):
    """One row: when a drain of the queue was last asked of the workers and not yet begun.

    Mail arriving one message at a time wakes the workers once, not once per message: the
    first message publishes a drain and sets kicked_at; the rest see it set and publish
    nothing; the drain clears it before it claims, so mail committed after that wakes the
    workers again (mailcore.queue.wake).
    """

    kicked_at = models.DateTimeField(null=True, blank=True)
    began_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last drain a wake-up asked for began.")

    def __str__(self) -> str:
        return f"drain asked at {self.kicked_at}" if self.kicked_at else "no drain asked"
