"""Verdicts: what to do with one inbound message (accept, Junk, refuse), and why; and the
message as the checks see it."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Incoming:
    """A message as the end of DATA holds it: the envelope, the client, and the content."""

    content: bytes  # as received: without the Return-Path and Received fields we add
    client_ip: str
    helo: str
    mail_from: str  # the envelope sender; "" for the null reverse-path
    recipients: tuple[str, ...]
    mailbox_ids: frozenset[int]  # the local mailboxes it goes to
    session_id: str = ""


class Action(enum.IntEnum):
    """What becomes of the message, weakest first: of two verdicts the stronger stands."""

    ACCEPT = 0  # delivered to the recipients' INBOX
    JUNK = 1  # delivered to each recipient mailbox's Junk folder
    TEMPFAIL = 2  # refused for now: 451, the sender tries again later
    REJECT = 3  # refused: 550, the sender's server bounces it


# The enhanced status codes (RFC 3463) a refusal carries when its step names none.
DEFAULT_STATUS = {Action.TEMPFAIL: "4.7.1", Action.REJECT: "5.7.1"}


@dataclass(frozen=True)
class Verdict:
    """One step's judgement of a message, or the sum of several (see then()).

    reason is for people: the SMTP reply's text on a refusal, the log, and the panel's list
    of refused mail (so it never holds the message's own bytes unescaped). headers are
    complete header fields, each ending in CRLF, to put on top of the stored message.
    results are what the checks found, by method ("spf", "dkim", "dmarc", "arc", ...),
    for the steps that follow, the log and the counters.
    """

    action: Action = Action.ACCEPT
    reason: str = ""
    status: str = ""  # RFC 3463 code of a refusal; "" for DEFAULT_STATUS
    headers: tuple[bytes, ...] = ()
    results: tuple[tuple[str, str], ...] = ()

    @property
    def refused(self) -> bool:
        return self.action >= Action.TEMPFAIL

    @property
    def enhanced_status(self) -> str:
        return self.status or DEFAULT_STATUS.get(self.action, "2.0.0")

    def result(self, method: str) -> str:
        """Return what the check by this method found ("" if none ran)."""
        return next((value for name, value in self.results if name == method), "")

    def then(self, later: Verdict) -> Verdict:
        """Return this verdict followed by a later step's: the stronger action (with its
        reason and status) stands; headers and results add up, in order."""
        stronger = later if later.action > self.action else self
        return replace(stronger, headers=self.headers + later.headers,
                       results=self.results + later.results)


ACCEPT = Verdict()


def junk(reason: str, **kwargs) -> Verdict:
    return Verdict(Action.JUNK, reason, **kwargs)


def reject(reason: str, status: str = "", **kwargs) -> Verdict:
    return Verdict(Action.REJECT, reason, status, **kwargs)


def tempfail(reason: str, status: str = "", **kwargs) -> Verdict:
    return Verdict(Action.TEMPFAIL, reason, status, **kwargs)


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """Return the verdicts' sum, first to last (ACCEPT for none)."""
    total = ACCEPT
    for verdict in verdicts:
        total = total.then(verdict)
    return total
