"""Delivery status notifications (RFC 3464, 3462): the bounce or delay notice to a sender."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, make_msgid

from django.utils import timezone

from mailcore.message.summary import split_header_block


@dataclass(frozen=True)
class RecipientReport:
    address: str
    action: str  # "failed", "delayed", "delivered" (RFC 3464 section 2.3.3)
    status: str  # enhanced status code, e.g. "5.1.1"
    diagnostic: str = ""  # the remote reply, e.g. "550 5.1.1 no such user"
    remote_mta: str = ""
    original_recipient: str = ""
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None


def _field_text(value: str) -> str:
    """Return value on one line, safe to put in a header field."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def build(*, reporting_mta: str, sender: str, original: bytes,
          reports: list[RecipientReport], arrival: datetime,
          envelope_id: str = "", return_full: bool = False, from_domain: str = "") -> bytes:
    """Return a multipart/report DSN to sender about reports (all of one action).

    from_domain: the domain of its From address (MAILER-DAEMON@), by default reporting_mta;
    the domain that DKIM-signs it, so that the signature aligns (RFC 7489 section 3.1).
    """
    now = timezone.now()
    delayed = all(r.action == "delayed" for r in reports)
    boundary = f"dsn-{secrets.token_hex(12)}"
    subject = ("Delayed Mail (still being retried)" if delayed
               else "Undelivered Mail Returned to Sender")
    header = (
        f"From: Mail Delivery System <MAILER-DAEMON@{from_domain or reporting_mta}>\r\n"
        f"To: <{sender}>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {format_datetime(now)}\r\n"
        f"Message-ID: {make_msgid('dsn', domain=reporting_mta)}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        f'\tboundary="{boundary}"\r\n'
        "\r\n"
        "This is a MIME-encapsulated message.\r\n"
    )
    human = _human_text(reporting_mta, reports, delayed)
    per_message = [f"Reporting-MTA: dns; {reporting_mta}"]
    if envelope_id:
        per_message.append(f"Original-Envelope-Id: {_field_text(envelope_id)}")
    per_message.append(f"Arrival-Date: {format_datetime(arrival)}")
    status_parts = ["\r\n".join(per_message)]
    for report in reports:
        fields = [f"Final-Recipient: rfc822; {report.address}"]
        if report.original_recipient:
            fields.append(f"Original-Recipient: {_field_text(report.original_recipient)}")
        fields += [f"Action: {report.action}", f"Status: {report.status}"]
        if report.remote_mta:
            fields.append(f"Remote-MTA: dns; {_field_text(report.remote_mta)}")
        if report.diagnostic:
            fields.append(f"Diagnostic-Code: smtp; {_field_text(report.diagnostic)}")
        if report.last_attempt:
            fields.append(f"Last-Attempt-Date: {format_datetime(report.last_attempt)}")
        if report.will_retry_until:
            fields.append(f"Will-Retry-Until: {format_datetime(report.will_retry_until)}")
        status_parts.append("\r\n".join(fields))
    if return_full:
        returned_type, returned = "message/rfc822", original
    else:
        returned_type, returned = "text/rfc822-headers", split_header_block(original)
    body = (
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{human}\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        + "\r\n\r\n".join(status_parts) + "\r\n\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: {returned_type}\r\n\r\n"
    ).encode()
    if not returned.endswith(b"\r\n"):
        returned += b"\r\n"
    return header.encode() + body + returned + f"--{boundary}--\r\n".encode()


def _human_text(reporting_mta: str, reports: list[RecipientReport], delayed: bool) -> str:
    if delayed:
        intro = (f"This is the mail system at {reporting_mta}.\r\n\r\n"
                 "Your message could not be delivered yet to the recipients below. "
                 "It is still in the queue and will be retried; you do not need to "
                 "send it again.\r\n")
    else:
        intro = (f"This is the mail system at {reporting_mta}.\r\n\r\n"
                 "I'm sorry to have to inform you that your message could not be "
                 "delivered to one or more recipients. The reasons are below.\r\n")
    lines = [intro]
    for report in reports:
        reason = _field_text(report.diagnostic) or f"status {report.status}"
        where = f" (from {report.remote_mta})" if report.remote_mta else ""
        lines.append(f"<{report.address}>: {reason}{where}")
    return "\r\n".join(lines) + "\r\n"
