"""Submitting mail for a principal (RFC 6409 section 8): From checks, added fields, DKIM,
local delivery and queueing, and the hourly sending limit."""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import format_datetime, getaddresses, make_msgid

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from mailcore import dbpool, directory, dkim, stats
from mailcore.addresses import split_address
from mailcore.models import TrafficCount
from mailcore.principal import Principal
from mailcore.sending.senders import SenderProblem, sender_problem
from mailcore.store.delivery import deliver

SEND_WINDOW = 3600  # seconds: the per-hour sending limit counts in fixed windows this long


class SendLimitReached(Exception):
    """The principal has sent its send_limit_per_hour messages in this hour's window."""


class FromRefused(Exception):
    """The From header names an address the user may not send as ("" for no address)."""

    def __init__(self, address: str,
                 problem: SenderProblem = SenderProblem.NOT_YOURS) -> None:
        super().__init__(address)
        self.address = address
        self.problem = problem


def header_block(content: bytes) -> bytes:
    """Return a CRLF message's header fields, up to the empty line (b"" if it has none)."""
    if content.startswith(b"\r\n"):
        return b""
    end = content.find(b"\r\n\r\n")
    return content if end == -1 else content[: end + 2]


def parse_headers(content: bytes) -> Message:
    # UTF-8 first: an SMTPUTF8 message may name internationalised addresses in From.
    text = header_block(content).decode("utf-8", "surrogateescape")
    return HeaderParser(policy=compat32).parsestr(text, headersonly=True)


def from_addresses(headers: Message) -> list[str]:
    """Return the addresses every From field names (RFC 5322 section 3.6.2)."""
    values = [str(value) for value in headers.get_all("From") or []]
    return [address for _, address in getaddresses(values) if address]


def submit(content: bytes, *, principal: Principal, mail_from: str, local_ids: Iterable[int],
           remote: Iterable[str], received: bytes, return_path: bytes,
           system: bool = False) -> None:
    """Check the From header, complete and sign the message, then store and queue it.

    Raise FromRefused if the From header names an address that is not the user's, and
    SendLimitReached if the message would pass the hourly sending limit.
    Local recipients get their copy at once (with Return-Path, as final delivery); the
    remote ones are queued in the same transaction, so either both happen or neither.
    system: the system writes it for the user (a vacation reply); it counts as system
    mail, not as a message the user sent.
    """
    headers = parse_headers(content)
    added = []
    if "From" in headers:
        senders = from_addresses(headers)
        if not senders:
            raise FromRefused("")
    else:
        # RFC 5322 requires a From field; add the envelope sender's, as Postfix does.
        senders = [mail_from]
        added.append(f"From: <{mail_from}>")
    for address in senders:
        problem = sender_problem(principal, address)
        if problem is not None:
            raise FromRefused(address, problem)
    # RFC 6409 sections 8.2 and 8.3.
    if "Date" not in headers:
        added.append(f"Date: {format_datetime(timezone.now())}")
    if "Message-ID" not in headers:
        added.append(f"Message-ID: {make_msgid(domain=settings.MAIL_HOSTNAME)}")
    fields = "".join(f"{field}\r\n" for field in added).encode("utf-8", "surrogateescape")
    # RFC 6409 section 8.5: sign as the domain the From field names (one the user may use).
    domain = directory.get_domain(split_address(senders[0])[1])
    message = dkim.sign(received + fields + content, domain)
    local_ids, remote = list(local_ids), list(remote)
    sender_id = principal.mailbox_id
    window = reserve_send(principal)
    try:
        with dbpool.writing():
            if local_ids:
                deliver(return_path + message, mail_from, local_ids,
                        sender_mailbox_id=sender_id, system=system)
            if remote:
                # RFC 5321 section 4.4: only final delivery adds Return-Path.
                deliver(message, mail_from, [], remote, sender_mailbox_id=sender_id,
                        system=system)
    except BaseException:
        _give_back(window)  # nothing was sent
        raise
    # After the commit, in its own short statement: the hour's counter row is shared by
    # every sender, so holding its lock for the delivery's transaction would serialise them.
    if system:
        stats.record(TrafficCount.Kind.SYSTEM)
    else:
        stats.record_submission(principal.mailbox_id)


# The hourly sending limit --------------------------------------------------------------------

def _window_key(mailbox_id: int) -> str:
    return f"sent:{mailbox_id}:{int(time.time()) // SEND_WINDOW}"


def send_limit_reached(principal: Principal) -> bool:
    """Return whether the principal has sent its messages for this hour (0: no limit)."""
    limit = principal.send_limit_per_hour
    return bool(limit) and (cache.get(_window_key(principal.mailbox_id)) or 0) >= limit


def reserve_send(principal: Principal) -> str:
    """Count one message in this hour's window and return the window's key.

    Raise SendLimitReached, counting nothing, if that passes the principal's limit. The
    count comes first and the check after it, both on one atomic increment (Redis, shared
    by every node), so that sessions sending at once, on one node or on several, cannot
    each see room for the last message: a check before counting would let them all pass.
    """
    key = _window_key(principal.mailbox_id)
    limit = principal.send_limit_per_hour
    if _incr(key) > limit > 0:
        _give_back(key)
        raise SendLimitReached(limit)
    return key


def _incr(key: str) -> int:
    for _ in range(3):
        cache.add(key, 0, SEND_WINDOW + 60)
        try:
            return cache.incr(key)
        except ValueError:  # it expired between add and incr
            continue
    return 1


def _give_back(key: str) -> None:
    try:
        cache.decr(key)
    except ValueError:  # the window ended meanwhile
        pass
