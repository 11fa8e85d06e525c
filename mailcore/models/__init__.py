"""The mail system's tables: directory, store and outbound queue."""

from __future__ import annotations

from .accounts import AppPassword, CustomerLimits, MailboxSettings, VacationReply
from .directory import Alias, Domain, Mailbox
from .queue import OutboundMessage, OutboundRecipient, OutboundWake
from .spam import Refusal, SenderRule
from .stats import SenderCount, TrafficCount
from .store import Blob, Expunged, Folder, Message, MessageText, Subscription

__all__ = [
    "Alias",
    "AppPassword",
    "CustomerLimits",
    "MailboxSettings",
    "VacationReply",
    "SenderCount",
    "TrafficCount",
    "Blob",
    "Domain",
    "Expunged",
    "Folder",
    "Mailbox",
    "Message",
    "MessageText",
    "OutboundMessage",
    "OutboundRecipient",
    "OutboundWake",
    "Refusal",
    "SenderRule",
    "Subscription",
]
