"""Vacation auto-replies (RFC 3834, with RFC 5230's rules): whom to answer, and the answer.

The worker runs answer() for each mailbox with its reply on, after a delivery to it.
decide() and build_reply() take the settings and the record of who was already answered
as plain values, so they are tested without the database; the settings are edited in
webmail (mailcore.webclient.preferences).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, compat32
from email.utils import format_datetime, getaddresses, make_msgid
from typing import Protocol

from django.conf import settings
from django.db import connection
from django.utils import timezone

from mailcore import directory
from mailcore.addresses import AddressError, normalize_address
from mailcore.directory import Route
from mailcore.message.summary import decode_text, split_header_block
from mailcore.models import MailboxSettings, VacationReply
from mailcore.principal import Principal
from mailcore.sending import outgoing
from mailcore.sending.senders import sender_addresses
from mailcore.store import sql
from mailcore.store.delivery import QuotaExceeded

DEFAULT_INTERVAL = timedelta(days=7)  # RFC 5230 section 4.1's default :days
_ROBOT_LOCALS = re.compile(
    r"^(mailer-daemon|postmaster|listserv|majordomo|mailman|no-?reply|do-?not-?reply|"
    r"bounces?|owner-.*|.*-request|.*-bounces?)$", re.IGNORECASE)
_LIST_FIELDS = ("list-id", "list-post", "list-unsubscribe", "list-help", "list-subscribe",
                "list-owner", "list-archive")


@dataclass(frozen=True)
class Vacation:
    """A mailbox's auto-reply settings."""

    enabled: bool = False
    subject: str = ""  # empty: "Auto: " and the original subject
    body: str = ""
    start: date | None = None  # first day it answers
    end: date | None = None  # last day it answers
    interval: timedelta = DEFAULT_INTERVAL  # answer each sender at most once in this time


class ReplyLog(Protocol):
    """Who was answered when (per mailbox): the storage the caller provides."""

    def replied_since(self, sender: str, since: datetime) -> bool: ...

    def record(self, sender: str, when: datetime) -> None: ...


@dataclass(frozen=True)
class Decision:
    reply: bool
    reason: str  # why not (or "reply")
    to: str = ""


def decide(vacation: Vacation, own_addresses: list[str], raw: bytes, envelope_sender: str,
           log: ReplyLog, now: datetime | None = None) -> Decision:
    """Return whether to answer a delivered message, and to whom (its envelope sender)."""
    now = now or timezone.now()
    if not vacation.enabled or not vacation.body.strip():
        return Decision(False, "off")
    today = timezone.localdate(now)
    if (vacation.start and today < vacation.start) or (vacation.end and today > vacation.end):
        return Decision(False, "outside the dates")
    sender = envelope_sender.strip().strip("<>")
    if not sender:
        return Decision(False, "null sender")  # a bounce (RFC 3834 section 2)
    try:
        sender = normalize_address(sender)
    except AddressError:
        return Decision(False, "bad sender")
    if _ROBOT_LOCALS.match(sender.rpartition("@")[0]):
        return Decision(False, "automated sender")
    own = {a.lower() for a in own_addresses}
    if sender in own:
        return Decision(False, "own address")
    headers = BytesHeaderParser(policy=compat32).parsebytes(split_header_block(raw))
    auto = str(headers.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    if auto != "no":
        return Decision(False, "auto-submitted")  # RFC 3834 section 2
    if any(headers.get(name) is not None for name in _LIST_FIELDS):
        return Decision(False, "mailing list")
    precedence = str(headers.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return Decision(False, "bulk mail")
    suppress = str(headers.get("X-Auto-Response-Suppress", "")).lower()
    if "oof" in suppress or "all" in suppress:
        return Decision(False, "suppressed")
    fields = (headers.get_all("To") or []) + (headers.get_all("Cc") or [])
    named = {a.lower() for _, a in getaddresses([decode_text(str(v)) for v in fields])}
    if not named & own:
        return Decision(False, "not addressed to the mailbox")  # RFC 5230 section 4.5
    if log.replied_since(sender, now - vacation.interval):
        return Decision(False, "already answered")
    return Decision(True, "reply", sender)


def build_reply(vacation: Vacation, principal: Principal, raw: bytes, to: str,
                now: datetime | None = None) -> bytes:
    """Return the auto-reply to a message (Auto-Submitted: auto-replied, RFC 3834 3.1.7)."""
    now = now or timezone.now()
    headers = BytesHeaderParser(policy=compat32).parsebytes(split_header_block(raw))
    subject = " ".join(decode_text(str(headers.get("Subject", ""))).split())
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=" ".join(principal.display_name.split()),
                              addr_spec=principal.address)
    message["To"] = to
    message["Subject"] = " ".join(vacation.subject.split()) or f"Auto: {subject}".strip()
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=settings.MAIL_HOSTNAME)
    message["Auto-Submitted"] = "auto-replied"
    original_id = " ".join(str(headers.get("Message-ID", "")).split())
    if original_id:
        # RFC 3834 section 3.1.4 and 3.1.5.
        message["In-Reply-To"] = original_id
        references = " ".join(str(headers.get("References", "")).split())
        message["References"] = f"{references} {original_id}".strip()
    body = vacation.body.replace("\r\n", "\n")
    message.set_content(body if body.endswith("\n") else body + "\n")
    return message.as_bytes()


def respond(vacation: Vacation, principal: Principal, raw: bytes, envelope_sender: str,
            log: ReplyLog, now: datetime | None = None) -> Decision:
    """Answer a message delivered to principal if the rules allow; record whom it answered.

    The answer goes through the submission path with a null envelope sender (RFC 3834
    section 3.3), so a bounce of it comes back to nobody.
    """
    now = now or timezone.now()
    own = sender_addresses(principal)  # its own address and the aliases it may answer as
    decision = decide(vacation, own, raw, envelope_sender, log, now)
    if not decision.reply:
        return decision
    if outgoing.send_limit_reached(principal):
        return Decision(False, "send limit reached")
    resolution = directory.resolve(decision.to)
    if resolution.route is Route.NOT_HOSTED:
        local_ids, remote = set(), {decision.to}
    elif resolution.route is Route.LOCAL:
        local_ids, remote = resolution.mailbox_ids, resolution.remote
    else:
        return Decision(False, f"recipient {resolution.route.value}")
    reply = build_reply(vacation, principal, raw, decision.to, now)
    received = (f"Received: by {settings.MAIL_HOSTNAME} (mailcore vacation)"
                f" for <{principal.address}>;\r\n\t{format_datetime(now)}\r\n").encode()
    try:
        outgoing.submit(reply, principal=principal, mail_from="", local_ids=local_ids,
                        remote=remote, received=received, return_path=b"Return-Path: <>\r\n",
                        system=True)
    except QuotaExceeded:
        return Decision(False, "recipient mailbox full")
    except outgoing.SendLimitReached:
        return Decision(False, "send limit reached")
    log.record(decision.to, now)
    return decision


# Run by the worker ------------------------------------------------------------------------------

def vacation_of(row: MailboxSettings) -> Vacation:
    """Return a mailbox's stored settings as the Vacation the rules take."""
    return Vacation(enabled=row.vacation_enabled, subject=row.vacation_subject,
                    body=row.vacation_body, start=row.vacation_start, end=row.vacation_end,
                    interval=timedelta(days=row.vacation_interval_days))


class StoredReplyLog:
    """The ReplyLog backed by VacationReply rows."""

    def __init__(self, mailbox_id: int) -> None:
        self.mailbox_id = mailbox_id

    def replied_since(self, sender: str, since: datetime) -> bool:
        return VacationReply.objects.filter(mailbox_id=self.mailbox_id, sender=sender,
                                            replied_at__gte=since).exists()

    def record(self, sender: str, when: datetime) -> None:
        VacationReply.objects.update_or_create(mailbox_id=self.mailbox_id, sender=sender,
                                               defaults={"replied_at": when})


def away(mailbox_ids: list[int]) -> list[int]:
    """Return those of the mailboxes whose vacation reply is on."""
    # Asked after every delivery: a plain statement per mailbox (most mail has one) costs
    # a fraction of the ORM query (mailcore.store.sql).
    found = []
    with connection.cursor() as cursor:
        for mailbox_id in mailbox_ids:
            cursor.execute(_away_sql(), [mailbox_id, True])
            if cursor.fetchone() is not None:
                found.append(mailbox_id)
    return found


@sql.statements
def _away_sql() -> str:
    return sql.render("SELECT 1 FROM {settings} WHERE {settings.mailbox_id} = %s "
                      "AND {settings.vacation_enabled} = %s", settings=MailboxSettings)


def answer(mailbox_id: int, raw: bytes, envelope_sender: str) -> str:
    """Run a mailbox's vacation reply for a message just delivered; return the decision."""
    row = (MailboxSettings.objects.select_related("mailbox__domain")
           .filter(mailbox_id=mailbox_id, vacation_enabled=True).first())
    if row is None:
        return "off"
    return respond(vacation_of(row), Principal.of(row.mailbox), raw, envelope_sender,
                   StoredReplyLog(mailbox_id)).reason
