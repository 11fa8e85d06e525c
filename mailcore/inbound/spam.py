"""Spam filtering at the end of DATA: the recipients' sender lists, then Rspamd's verdict.

The pipeline step reads, in one unit of database work, what the recipients said: their
mailboxes' always-allow and always-block lists and their domains' spam sensitivity and
greylisting. A sender every local recipient blocks is refused (550); one every local
recipient allows skips the scan (unless it failed DMARC: a list names a From address, and
only an authenticated one is worth trusting). Otherwise Rspamd's action decides:
reject is refused (550), add header / rewrite subject go to Junk with an X-Spam header and
the score, greylist is deferred (451 4.7.1) where the domains greylist, soft reject is
deferred. Rspamd down: delivered marked "unscanned", or deferred (RSPAMD_DOWN).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from dataclasses import dataclass, replace
from email.utils import getaddresses

from django.conf import settings

from mailcore import dbpool
from mailcore.inbound import lookups, rspamd
from mailcore.inbound.signatures import header_fields
from mailcore.inbound.verdict import ACCEPT, Incoming, Verdict, junk, reject, tempfail
from mailcore.models import Domain, SenderRule

log = logging.getLogger("mailcore.inbound")

# Rspamd's score thresholds per sensitivity: (add header, i.e. Junk; greylist; reject).
# "normal" is Rspamd's own default.
THRESHOLDS: dict[str, tuple[float, float, float]] = {
    Domain.SpamSensitivity.RELAXED: (10.0, 9.0, 20.0),
    Domain.SpamSensitivity.NORMAL: (6.0, 4.0, 15.0),
    Domain.SpamSensitivity.STRICT: (4.0, 3.0, 10.0),
}


@dataclass(frozen=True)
class Policy:
    """What the recipients' settings say about one message's sender."""

    blocked: bool = False  # every local recipient blocks the sender
    allowed: bool = False  # every local recipient allows the sender
    thresholds: tuple[float, float, float] = THRESHOLDS[Domain.SpamSensitivity.NORMAL]
    greylisting: bool = True  # every recipient domain greylists


def matches(pattern: str, address: str) -> bool:
    """Return whether a list entry (an address, or a domain and its subdomains) names an
    address."""
    if "@" in pattern:
        return pattern == address
    domain = address.rpartition("@")[2]
    return domain == pattern or domain.endswith("." + pattern)


def policy_for(mailbox_ids: list[int], recipients: list[str], senders: list[str]) -> Policy:
    """Return the recipients' policy for mail from these sender addresses (lower case).

    Of several recipient domains, the most lenient thresholds and greylisting only if all
    greylist: refusing or deferring the message refuses it for every recipient.
    """
    rules: dict[int, set[str]] = {mailbox_id: set() for mailbox_id in mailbox_ids}
    for mailbox_id, kind, pattern in SenderRule.objects.filter(
            mailbox_id__in=mailbox_ids).values_list("mailbox_id", "kind", "pattern"):
        if any(matches(pattern, sender) for sender in senders):
            rules[mailbox_id].add(kind)
    names = {r.rpartition("@")[2].lower() for r in recipients}
    domains = list(Domain.objects.receiving().filter(name__in=names)
                   .values_list("spam_sensitivity", "greylisting"))
    thresholds = [THRESHOLDS.get(s, THRESHOLDS[Domain.SpamSensitivity.NORMAL])
                  for s, _ in domains]
    return Policy(
        blocked=bool(rules) and all(SenderRule.Kind.BLOCK in k for k in rules.values()),
        allowed=bool(rules) and all(k == {SenderRule.Kind.ALLOW} for k in rules.values()),
        thresholds=max(thresholds) if thresholds else Policy.thresholds,
        greylisting=all(g for _, g in domains),
    )


def senders(incoming: Incoming) -> list[str]:
    """Return the addresses the message comes from: envelope sender and From addresses."""
    found = [incoming.mail_from.lower()] if incoming.mail_from else []
    for name, value in header_fields(incoming.content):
        if name.lower() == b"from":
            text = re.sub(r"\r?\n", "", value.decode("utf-8", "replace"))
            found += [a.lower() for _, a in getaddresses([text]) if "@" in a]
    return list(dict.fromkeys(found))


async def check_spam(incoming: Incoming, so_far: Verdict = ACCEPT) -> Verdict:
    """The pipeline step: the recipients' lists, then Rspamd's action."""
    from_addresses = senders(incoming)
    policy, hostname = await asyncio.gather(
        dbpool.run(policy_for, sorted(incoming.mailbox_ids), list(incoming.recipients),
                   from_addresses),
        client_hostname(incoming.client_ip))
    shown = incoming.mail_from or (from_addresses[0] if from_addresses else "")
    if policy.blocked:
        return reject(f"The recipient does not accept mail from {shown}", "5.7.1",
                      results=(("spam", "blocked"),))
    if policy.allowed and so_far.result("dmarc") != "fail":
        return Verdict(headers=(b"X-Spam-Status: No, sender on the recipient's allow list\r\n",),
                       results=(("spam", "allowed"),))
    message = b"".join(so_far.headers) + incoming.content  # with our Authentication-Results
    try:
        scan = await rspamd.check(message, request_headers(incoming, policy, hostname))
    except rspamd.Unavailable as exc:
        log.warning("session=%s not scanned for spam: %s", incoming.session_id, exc)
        if settings.RSPAMD_DOWN == "defer":
            return tempfail("Spam filter unavailable; try again later", "4.7.1",
                            results=(("spam", "unscanned"),))
        return Verdict(headers=(b"X-Spam-Status: Unscanned\r\n",),
                       results=(("spam", "unscanned"),))
    log.info("session=%s rspamd action=%s score=%.2f symbols=%s", incoming.session_id,
             scan.action, scan.score, ",".join(scan.symbols))
    return verdict_for(scan, policy)


_SPAM_FIELD = re.compile(rb"(?im)^x-spam(?:-status|-score|-flag|-level)?[ \t]*:"
                         rb"[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")


def strip_spam_fields(content: bytes) -> bytes:
    """Return content without the X-Spam fields the sender wrote: where we filter, only
    ours (added on top) may tell a mail client or a filter rule what the message is."""
    head, sep, body = content.partition(b"\r\n\r\n")
    if not sep:
        return content
    head += b"\r\n"
    stripped = _SPAM_FIELD.sub(b"", head)
    if stripped == head:
        return content
    return stripped[:-2] + sep + body if stripped else body


def request_headers(incoming: Incoming, policy: Policy, hostname: str
                    ) -> list[tuple[str, bytes]]:
    """Return the /checkv2 request headers: envelope, client and the domain's thresholds."""
    add_header, greylist, reject_at = policy.thresholds
    overrides: dict = {"actions": {"reject": reject_at, "add_header": add_header,
                                   "greylist": greylist}}
    if not policy.greylisting:
        # Rspamd's greylist module would still defer (and remember) the message.
        overrides["symbols_disabled"] = ["GREYLIST_CHECK", "GREYLIST_SAVE"]
    headers = [("IP", incoming.client_ip), ("Helo", incoming.helo or "unknown"),
               ("Queue-Id", incoming.session_id or "unknown"),
               ("Settings", json.dumps(overrides))]
    if incoming.mail_from:
        headers.append(("From", incoming.mail_from))
    if hostname:
        headers.append(("Hostname", hostname))
    headers += [("Rcpt", recipient) for recipient in incoming.recipients]
    return [(name, _header_safe(value)) for name, value in headers]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _header_safe(value: str) -> bytes:
    """Return value fit for an HTTP header: no control characters, as UTF-8 bytes.

    A HELO name full of odd bytes must not make the request fail, and the message pass
    unscanned. Envelope addresses may be UTF-8 (SMTPUTF8); invalid UTF-8 (which aiosmtpd
    decodes to surrogates) becomes "?".
    """
    return _CONTROL.sub("?", value).encode("utf-8", "replace")


def verdict_for(scan: rspamd.Scan, policy: Policy) -> Verdict:
    """Return what Rspamd's action means for the message."""
    score = f"score={scan.score:.2f} required={policy.thresholds[0]:.2f}"
    results = (("spam", scan.action),)
    if scan.action == rspamd.REJECT:
        return reject(f"Message refused as spam (spam score {scan.score:.1f})", "5.7.1",
                      results=results)
    if scan.action in (rspamd.ADD_HEADER, rspamd.REWRITE_SUBJECT):
        return junk(f"Spam score {scan.score:.1f}", results=results, headers=(
            b"X-Spam: Yes\r\n", f"X-Spam-Status: Yes, {score}\r\n".encode()))
    if scan.action == rspamd.SOFT_REJECT:
        return tempfail("Message deferred by the spam filter; try again later", "4.7.1",
                        results=results)
    if scan.action == rspamd.GREYLIST:
        # Rspamd's greylist module greylists doubtful mail up to the reject score on its
        # first attempt; where greylisting is off, the score alone decides.
        if policy.greylisting:
            return tempfail("Greylisted, try again later", "4.7.1", results=results)
        if scan.score >= policy.thresholds[0]:
            return verdict_for(replace(scan, action=rspamd.ADD_HEADER), policy)
    return Verdict(headers=(f"X-Spam-Status: No, {score}\r\n".encode(),), results=results)


async def client_hostname(ip: str) -> str:
    """Return the client's forward-confirmed reverse DNS name, or "" (RFC 8601's iprev).

    Rspamd scores a client without one as suspect; it does not look it up itself.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    resolver = lookups.resolver()
    try:
        names = [str(r.target).rstrip(".").lower()
                 for r in await resolver.lookup(address.reverse_pointer, "PTR")]
        for name in names[:5]:
            rdtype = "A" if address.version == 4 else "AAAA"
            if any(ipaddress.ip_address(r.address) == address
                   for r in await resolver.lookup(name, rdtype)):
                return name
    except lookups.TempError:
        pass
    return ""
