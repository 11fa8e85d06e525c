"""Delivery attempts: claim due recipients, talk SMTP to the next hop, record each outcome."""

from __future__ import annotations

import functools
import logging
import re
import smtplib
import ssl
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from mailcore import dbpool, stats
from mailcore.message.transfer import dot_stuffed
from mailcore.models import OutboundMessage, OutboundRecipient
from mailcore.queue import wake
from mailcore.queue.bounces import notify_senders
from mailcore.queue.routing import Hop, NoRoute, hops_for
from mailcore.store import sql
from mailcore.store.blobs import blob_store

log = logging.getLogger("mailcore.queue")
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Outcome:
    """What the next hop said about one recipient (code 0: no answer at all)."""

    code: int
    text: str
    remote_mta: str = ""
    status: str = ""

    @property
    def delivered(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def enhanced(self) -> str:
        if self.status:
            return self.status
        match = _ENHANCED.match(self.text)
        if match:
            return match.group(1)
        return "2.0.0" if self.delivered else "5.0.0" if self.permanent else "4.4.1"

    @property
    def response(self) -> str:
        return f"{self.code} {self.text}" if self.code else self.text


# Claiming -------------------------------------------------------------------------------------

def _due(now: datetime) -> QuerySet[OutboundRecipient]:
    return (OutboundRecipient.objects.pending().filter(next_attempt_at__lte=now)
            .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now)))


def _lease(due: QuerySet[OutboundRecipient], now: datetime) -> list[OutboundRecipient]:
    """Lease these due recipients to this worker and count the attempt.

    A lease, not a lock: a worker killed mid-delivery leaves the lease to run out, and the
    recipient is tried again (at worst delivered twice, never lost). Rows another worker
    is leasing at this moment are skipped (Postgres), or wait for it (SQLite, one writer),
    and are then no longer due.
    """
    # Not durable: a lease a power cut loses only makes the recipient due again.
    with dbpool.writing(durable=False):
        ids = list(due.select_for_update(skip_locked=True).values_list("pk", flat=True))
        OutboundRecipient.objects.filter(pk__in=ids).update(
            leased_until=now + timedelta(seconds=settings.OUTBOUND_LEASE),
            attempts=F("attempts") + 1)
    # In the order queued: a message's RCPTs go out as its sender listed them.
    return list(OutboundRecipient.objects.filter(pk__in=ids).select_related("message")
                .order_by("pk"))


def claim(message_ids: Iterable[int]) -> list[OutboundRecipient]:
    """Lease the due recipients of these messages to this worker and count the attempt."""
    now = timezone.now()
    return _lease(_due(now).filter(message_id__in=list(message_ids)), now)


def claim_due(limit: int) -> list[OutboundRecipient]:
    """Lease up to limit due recipients of any messages, those due longest first."""
    now = timezone.now()
    return _lease(_due(now).order_by("next_attempt_at", "pk")[:limit], now)


# Talking SMTP --------------------------------------------------------------------------------

@functools.cache
def _tls_context(verify: bool) -> ssl.SSLContext:
    """Return a client TLS context, made once and only when a hop needs TLS: loading the
    system's CA certificates costs 20 ms (a fifth of a worker's time in bench/outbound.py
    when every drain made it), and a context that verifies nothing needs none."""
    if verify:
        return ssl.create_default_context()
    # Deviation from strict verification: opportunistic TLS to MX hosts (RFC 3207
    # section 4.1) is encryption without authentication, as every MTA does by default.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _connect(hop: Hop) -> smtplib.SMTP:
    verify = hop.tls != "opportunistic"
    common = {"local_hostname": settings.MAIL_HOSTNAME, "timeout": settings.OUTBOUND_TIMEOUT}
    if hop.tls == "tls":
        conn: smtplib.SMTP = smtplib.SMTP_SSL(hop.host, hop.port, context=_tls_context(verify),
                                              **common)
    else:
        conn = smtplib.SMTP(hop.host, hop.port, **common)
    try:
        conn.ehlo()
        if hop.tls != "tls" and conn.has_extn("starttls"):
            conn.starttls(context=_tls_context(verify))
            conn.ehlo()
        elif hop.tls == "starttls":
            raise smtplib.SMTPException(f"{hop.host} does not offer STARTTLS")
        if hop.user:
            conn.login(hop.user, hop.password)
    except BaseException:
        conn.close()
        raise
    return conn


def _send_one(conn: smtplib.SMTP, hop: Hop, message: OutboundMessage, raw: bytes,
              recipients: list[OutboundRecipient]) -> dict[int, Outcome]:
    """Run one mail transaction on an open connection; return an outcome per recipient."""
    options = []
    if conn.has_extn("size"):
        options.append(f"SIZE={len(raw)}")
    if not raw.isascii() and conn.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    if not (message.mail_from.isascii() and all(r.address.isascii() for r in recipients)):
        if not conn.has_extn("smtputf8"):
            return {r.pk: Outcome(553, "5.6.7 next hop does not support SMTPUTF8", hop.host)
                    for r in recipients}
        options.append("SMTPUTF8")
    if conn.has_extn("pipelining"):
        return _send_pipelined(conn, hop, message.mail_from, options, raw, recipients)
    code, text = conn.mail(message.mail_from, options)
    if code != 250:
        conn.rset()
        return {r.pk: Outcome(code, _text(text), hop.host) for r in recipients}
    outcomes: dict[int, Outcome] = {}
    accepted = []
    for recipient in recipients:
        code, text = conn.rcpt(recipient.address)
        if code in (250, 251):
            accepted.append(recipient)
        else:
            outcomes[recipient.pk] = Outcome(code, _text(text), hop.host)
    if not accepted:
        conn.rset()
        return outcomes
    try:
        code, text = conn.data(raw)
    except smtplib.SMTPDataError as exc:
        code, text = exc.smtp_code, exc.smtp_error
    for recipient in accepted:
        outcomes[recipient.pk] = Outcome(code, _text(text), hop.host)
    return outcomes


def _send_pipelined(conn: smtplib.SMTP, hop: Hop, mail_from: str, options: list[str],
                    raw: bytes, recipients: list[OutboundRecipient]) -> dict[int, Outcome]:
    """Run one mail transaction with MAIL, every RCPT and DATA in one write (RFC 2920).

    Two round trips per message instead of three plus one per recipient: each round trip
    waits for the next hop, and the worker's time went mostly to that waiting.
    """
    conn.command_encoding = "utf-8" if "SMTPUTF8" in options else "ascii"
    extra = "".join(f" {option}" for option in options)
    commands = [f"MAIL FROM:{smtplib.quoteaddr(mail_from)}{extra}",
                *(f"RCPT TO:{smtplib.quoteaddr(r.address)}" for r in recipients), "DATA"]
    conn.send("".join(f"{command}\r\n" for command in commands))
    # RFC 2920 section 3.1: read every reply, in order, whatever the earlier ones said.
    mail_code, mail_text = conn.getreply()
    rcpt_replies = [conn.getreply() for _ in recipients]
    data_code, data_text = conn.getreply()
    outcomes: dict[int, Outcome] = {}
    accepted = []
    for recipient, (code, text) in zip(recipients, rcpt_replies, strict=True):
        if mail_code != 250:
            outcomes[recipient.pk] = Outcome(mail_code, _text(mail_text), hop.host)
        elif code in (250, 251):
            accepted.append(recipient)
        else:
            outcomes[recipient.pk] = Outcome(code, _text(text), hop.host)
    if data_code != 354:
        for recipient in accepted:
            outcomes[recipient.pk] = Outcome(data_code, _text(data_text), hop.host)
        if mail_code == 250:
            conn.rset()
        return outcomes
    if not accepted:
        # DATA accepted with no recipient: end an empty message, which the server refuses.
        conn.send(b".\r\n")
        conn.getreply()
        return outcomes
    conn.send(dot_stuffed(raw) + b".\r\n")
    code, text = conn.getreply()
    for recipient in accepted:
        outcomes[recipient.pk] = Outcome(code, _text(text), hop.host)
    return outcomes


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split())


def deliver_to_domain(domain: str, batches: list[tuple[OutboundMessage, list[OutboundRecipient]]]
                      ) -> dict[int, Outcome]:
    """Deliver several messages for one domain, over one connection where possible."""
    everyone = [r for _, rs in batches for r in rs]
    try:
        hops = hops_for(domain)
    except NoRoute as exc:
        outcome = Outcome(550 if exc.permanent else 451, exc.text, status=exc.status)
        return {r.pk: outcome for r in everyone}
    outcomes: dict[int, Outcome] = {}
    failure = Outcome(0, f"no mail exchanger for {domain} answered", status="4.4.1")
    for hop in hops:
        try:
            conn = _connect(hop)
        except (OSError, smtplib.SMTPException) as exc:
            failure = Outcome(0, f"{hop.host}:{hop.port}: {exc}", hop.host, "4.4.1")
            log.info("outbound connect failed host=%s port=%d: %s", hop.host, hop.port, exc)
            continue
        try:
            for message, recipients in batches:
                raw = blob_store().get(message.blob_id)
                outcomes.update(_send_one(conn, hop, message, raw, recipients))
            conn.quit()
        except (OSError, smtplib.SMTPException) as exc:
            failure = Outcome(0, f"{hop.host}:{hop.port}: {exc}", hop.host, "4.4.2")
            conn.close()
        if len(outcomes) == len(everyone):
            return outcomes
        # The connection broke: the rest go to the next hop.
        batches = [(m, [r for r in rs if r.pk not in outcomes]) for m, rs in batches]
        batches = [(m, rs) for m, rs in batches if rs]
    for recipient in everyone:
        outcomes.setdefault(recipient.pk, failure)
    return outcomes


# Recording --------------------------------------------------------------------------------------

def retry_delay(attempts: int) -> int:
    """Return seconds to wait after this many attempts: 1 min, 5, 15, 30, 1 h, then hourly."""
    delays = settings.OUTBOUND_RETRY_DELAYS
    return delays[min(attempts, len(delays)) - 1] if attempts else delays[0]


_OUTCOME_FIELDS = ("last_response", "status", "remote_mta", "state", "next_attempt_at",
                   "updated_at", "id")
_ARRAY_TYPES = {"last_response": "text", "status": "text", "remote_mta": "text",
                "state": "text", "next_attempt_at": "timestamptz", "updated_at": "timestamptz",
                "id": "bigint"}


@sql.statements
def _record_sql() -> str:
    """Return the statement storing a batch of outcomes (parameters: see record()).

    Only while still queued: an operator may have bounced or deleted it meanwhile. One
    statement for the batch instead of the ORM's update() per recipient, which cost more
    than the SMTP transaction (bench/outbound.py): on Postgres one statement over arrays
    (a round trip per row waits for the server each time); on SQLite, in this process,
    one statement run per row (executemany).
    """
    fields = _OUTCOME_FIELDS[:-1]
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"unnest(%s::{_ARRAY_TYPES[f]}[]) AS {f}" for f in _OUTCOME_FIELDS)
        assignments = ", ".join(f"{sql.column(OutboundRecipient, f)} = v.{f}" for f in fields)
        return sql.render(
            "UPDATE {r} SET " + assignments + ", {r.leased_until} = NULL "
            "FROM (SELECT " + arrays + ") AS v WHERE {r}.{r.id} = v.id AND {r}.{r.state} = %s",
            r=OutboundRecipient)
    assignments = ", ".join(f"{sql.column(OutboundRecipient, f)} = %s" for f in fields)
    return sql.render(
        "UPDATE {r} SET " + assignments + ", {r.leased_until} = NULL "
        "WHERE {r.id} = %s AND {r.state} = %s", r=OutboundRecipient)


def record(recipients: list[OutboundRecipient], outcomes: dict[int, Outcome]) -> None:
    """Store each recipient's outcome, then send the bounces and delay notices it calls for."""
    now = timezone.now()
    rows = []
    for recipient in recipients:
        outcome = outcomes[recipient.pk]
        recipient.last_response = outcome.response
        recipient.status = outcome.enhanced
        recipient.remote_mta = outcome.remote_mta
        recipient.leased_until = None
        recipient.updated_at = now  # the last attempt's time, which a DSN reports
        expires = recipient.message.expires_at
        if outcome.delivered:
            recipient.state = OutboundRecipient.State.DELIVERED
        elif outcome.permanent or (expires is not None and now >= expires):
            recipient.state = OutboundRecipient.State.FAILED
        else:
            recipient.next_attempt_at = now + timedelta(seconds=retry_delay(recipient.attempts))
        rows.append([sql.prep(OutboundRecipient, f, getattr(recipient, f))
                     for f in _OUTCOME_FIELDS])
        log.info("outbound message=%d to=<%s> attempt=%d %s: %s", recipient.message_id,
                 recipient.address, recipient.attempts, recipient.state, outcome.response)
    # Not durable: an outcome a power cut loses sends the message again, never loses it.
    queued = OutboundRecipient.State.QUEUED.value
    with dbpool.writing(durable=False), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_record_sql(), [*map(list, zip(*rows, strict=True)), queued])
        else:
            cursor.executemany(_record_sql(), [[*row, queued] for row in rows])
    failed = [r for r in recipients if r.state == OutboundRecipient.State.FAILED]
    stats.record("bounced", len(failed))
    notify_senders({r.message_id for r in recipients})


def _company(recipients: list[OutboundRecipient], limit: int) -> list[int]:
    """Return other due messages bound for the same domains, to share the connections."""
    now = timezone.now()
    domains = {r.address.rpartition("@")[2].lower() for r in recipients}
    same_domain = Q()
    for domain in domains:
        same_domain |= Q(address__iendswith=f"@{domain}")
    return list(OutboundRecipient.objects.pending()
                .filter(same_domain, next_attempt_at__lte=now)
                .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
                .exclude(message_id__in={r.message_id for r in recipients})
                .order_by("next_attempt_at").values_list("message_id", flat=True)
                .distinct()[:limit])


def attempt(message_ids: Iterable[int], batch: int = 50) -> None:
    """Try every due recipient of these messages once, with other mail for the same domains.

    Whichever attempt runs first takes the waiting company along on one connection, and
    the later ones find nothing left to do.
    """
    recipients = claim(message_ids)
    if not recipients:
        return
    recipients += claim(_company(recipients, batch))
    _deliver(recipients)


def drain(batch: int, more: Callable[[], None], gather: float = 0.0) -> int:
    """Deliver up to batch due recipients of the whole queue, oldest first; return how many.

    A full batch may have left more due: more() is called before the delivery starts, to
    have another worker take the next batch meanwhile (one SMTP session per worker process
    at a time, so a destination gets as many in parallel as there are worker processes).
    gather: see wake.begin().
    """
    wake.begin(gather)
    recipients = claim_due(batch)
    if len(recipients) >= batch:
        more()
    if recipients:
        _deliver(recipients)
    return len(recipients)


def _deliver(recipients: list[OutboundRecipient]) -> None:
    """Deliver claimed recipients, a connection per destination domain, and record them."""
    by_domain: dict[str, dict[int, list[OutboundRecipient]]] = defaultdict(dict)
    messages: dict[int, OutboundMessage] = {}
    for recipient in recipients:
        domain = recipient.address.rpartition("@")[2].lower()
        by_domain[domain].setdefault(recipient.message_id, []).append(recipient)
        messages[recipient.message_id] = recipient.message
    outcomes: dict[int, Outcome] = {}
    jobs = [(domain, [(messages[mid], rs) for mid, rs in per_message.items()])
            for domain, per_message in by_domain.items()]
    at_once = min(len(jobs), settings.OUTBOUND_DESTINATIONS_AT_ONCE)
    if at_once <= 1:
        for domain, batches in jobs:
            outcomes.update(deliver_to_domain(domain, batches))
    else:
        # Destinations side by side: one that times out does not hold up the others.
        # deliver_to_domain touches no database, so the threads need no connection.
        with ThreadPoolExecutor(at_once, thread_name_prefix="outbound") as pool:
            for found in pool.map(lambda job: deliver_to_domain(*job), jobs):
                outcomes.update(found)
    record(recipients, outcomes)
