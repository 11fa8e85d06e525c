"""Returning failures to senders: one DSN per message per event, never for a bounce."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mailcore import dkim, dsn
from mailcore.directory import Route, resolve
from mailcore.models import Domain, OutboundMessage, OutboundRecipient
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import QuotaExceeded, deliver

log = logging.getLogger("mailcore.queue")


def _wants(recipient: OutboundRecipient, event: str) -> bool:
    """Return whether the sender asked to hear about event (RFC 3461 NOTIFY; default on)."""
    notify = recipient.notify.upper()
    if not notify:
        return event in ("FAILURE", "DELAY")
    return event in notify.split(",")


def _report(recipient: OutboundRecipient, action: str) -> dsn.RecipientReport:
    message = recipient.message
    return dsn.RecipientReport(
        address=recipient.address, action=action,
        status=recipient.status or ("5.0.0" if action == "failed" else "4.0.0"),
        diagnostic=recipient.last_response, remote_mta=recipient.remote_mta,
        original_recipient=recipient.original_recipient,
        last_attempt=recipient.updated_at,
        will_retry_until=message.expires_at if action == "delayed" else None,
    )


def send_dsn(raw: bytes, sender: str, signer: Domain | None = None) -> None:
    """Deliver a DSN to sender: into a local mailbox, or queued with a null reverse-path.

    One that leaves is DKIM-signed by signer (a domain of ours) if given. A DSN to an SRS
    address of ours goes to the original sender it stands for (directory.resolve).
    """
    resolution = resolve(sender)
    if resolution.route is Route.LOCAL:
        if resolution.remote and signer is not None:
            raw = dkim.sign(raw, signer)
        try:
            deliver(raw, "", resolution.mailbox_ids, resolution.remote)
        except QuotaExceeded:
            log.warning("dsn to <%s> dropped: mailbox full", sender)
    elif resolution.route is Route.NOT_HOSTED:
        deliver(dkim.sign(raw, signer) if signer is not None else raw, "", [], [sender])
    else:
        log.warning("dsn to <%s> dropped: %s", sender, resolution.route.value)


def notify_senders(message_ids: set[int]) -> None:
    """Send the bounces and delay notices these messages' recipients now call for."""
    notice_due = timezone.now() - timedelta(seconds=settings.OUTBOUND_DELAY_NOTICE)
    pending = (OutboundRecipient.objects.filter(message_id__in=list(message_ids))
               .filter(Q(state=OutboundRecipient.State.FAILED, dsn_sent=False)
                       | Q(state=OutboundRecipient.State.QUEUED, delay_notified=False,
                           message__created_at__lte=notice_due))
               .values_list("message_id", flat=True).distinct())
    for message_id in set(pending):
        with transaction.atomic():
            message = OutboundMessage.objects.select_for_update().get(pk=message_id)
            recipients = list(message.recipients.select_related("message"))
            _bounce(message, recipients)
            _delay_notice(message, recipients)


def _bounce(message: OutboundMessage, recipients: list[OutboundRecipient]) -> None:
    failed = [r for r in recipients
              if r.state == OutboundRecipient.State.FAILED and not r.dsn_sent]
    if not failed:
        return
    wanted = [r for r in failed if _wants(r, "FAILURE")]
    # Never bounce a bounce: a null reverse-path gets no DSN (RFC 5321 section 4.5.5).
    if message.mail_from and wanted:
        _send(message, [_report(r, "failed") for r in wanted])
    OutboundRecipient.objects.filter(pk__in=[r.pk for r in failed]).update(dsn_sent=True)


def _delay_notice(message: OutboundMessage, recipients: list[OutboundRecipient]) -> None:
    due = message.created_at + timedelta(seconds=settings.OUTBOUND_DELAY_NOTICE)
    if timezone.now() < due or not message.mail_from:
        return
    waiting = [r for r in recipients if r.state == OutboundRecipient.State.QUEUED
               and not r.delay_notified and _wants(r, "DELAY")]
    if not waiting:
        return
    _send(message, [_report(r, "delayed") for r in waiting])
    OutboundRecipient.objects.filter(pk__in=[r.pk for r in waiting]).update(delay_notified=True)


def _send(message: OutboundMessage, reports: list[dsn.RecipientReport]) -> None:
    # From MAILER-DAEMON at the sender's domain when it is ours (a user's own mail, or the
    # SRS address of mail a domain forwarded), and signed by it if it leaves, so the DSN
    # passes DKIM and DMARC where it arrives.
    signer = dkim.signing_domain(message.mail_from.rpartition("@")[2])
    raw = dsn.build(
        reporting_mta=settings.MAIL_HOSTNAME, sender=message.mail_from,
        original=blob_store().get(message.blob_id), reports=reports,
        arrival=message.created_at, envelope_id=message.envelope_id,
        return_full=message.dsn_return == OutboundMessage.Return.FULL,
        from_domain=signer.name if signer else "",
    )
    send_dsn(raw, message.mail_from, signer)
    log.info("dsn message=%d to=<%s> action=%s recipients=%d", message.pk, message.mail_from,
             reports[0].action, len(reports))
