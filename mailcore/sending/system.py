"""System mail: a Django email backend that sends the panel's mail through our own delivery.

Hosted recipients get the message in their INBOX at once; everyone else's copy joins the
outbound queue (envelope sender DEFAULT_FROM_EMAIL), DKIM-signed when the From domain is
one of ours, or in development the development outbox (mailcore.sending.devoutbox).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

from mailcore import directory, dkim, stats
from mailcore.addresses import AddressError, normalize_address, split_address
from mailcore.directory import Route
from mailcore.models import Domain, TrafficCount
from mailcore.sending import devoutbox
from mailcore.store.delivery import QuotaExceeded, deliver

log = logging.getLogger("mailcore.sending")


class UndeliverableMessage(Exception):
    """No recipient of the message could be reached."""


def _envelope_sender() -> str:
    try:
        return normalize_address(settings.DEFAULT_FROM_EMAIL)
    except AddressError:
        return ""


def _signing_domain(message: EmailMessage) -> Domain | None:
    try:
        _, domain_name = split_address(parseaddr(message.from_email)[1])
    except AddressError:
        return None
    return Domain.objects.receiving().filter(name=domain_name).first()


def _raw(message: EmailMessage) -> bytes:
    raw = message.message().as_bytes(linesep="\r\n")
    domain = _signing_domain(message)
    return dkim.sign(raw, domain) if domain is not None else raw


def send(message: EmailMessage) -> bool:
    """Deliver one message to its hosted recipients and queue it for the others."""
    mailbox_ids: set[int] = set()
    remote: set[str] = set()
    for recipient in message.recipients():
        recipient = parseaddr(recipient)[1] or recipient
        resolution = directory.resolve(recipient)
        if resolution.route is Route.LOCAL:
            mailbox_ids |= resolution.mailbox_ids
            remote |= resolution.remote
        elif resolution.route is Route.NOT_HOSTED:
            remote.add(normalize_address(recipient))
        else:
            log.warning("panel mail to <%s> dropped: %s", recipient, resolution.route.value)
    if not mailbox_ids and not remote:
        raise UndeliverableMessage(", ".join(message.recipients()))
    raw = _raw(message)
    mail_from = _envelope_sender()
    if remote and devoutbox.enabled():
        # Development: outside addresses get nothing; the operator reads it in the outbox.
        devoutbox.keep(raw, mail_from, remote)
        remote = set()
        if not mailbox_ids:
            return True
    try:
        deliver(raw, mail_from, mailbox_ids, remote, system=True)
    except QuotaExceeded as exc:
        # Drop the full mailboxes rather than the whole message.
        full = set(exc.addresses)
        mailbox_ids = {pk for pk in mailbox_ids
                       if directory.list_mailboxes().get(pk=pk).address not in full}
        log.warning("panel mail not stored in full mailboxes: %s", ", ".join(sorted(full)))
        if not mailbox_ids and not remote:
            raise
        deliver(raw, mail_from, mailbox_ids, remote, system=True)
    stats.record(TrafficCount.Kind.SYSTEM)
    return True


class EmailBackend(BaseEmailBackend):
    """Send Django's mail (allauth's verification and reset messages) through mailcore."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            try:
                send(message)
            except Exception:
                if not self.fail_silently:
                    raise
                log.warning("panel mail could not be sent", exc_info=True)
                continue
            sent += 1
        return sent
