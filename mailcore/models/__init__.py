"""The mail system's tables: directory, store and outbound queue."""

from __future__ import annotations

from .directory import Alias, Domain, Mailbox
from .queue import OutboundMessage, OutboundRecipient
from .store import Blob, Expunged, Folder, Message

__all__ = [
    "Alias",
    "Blob",
    "Domain",
    "Expunged",
    "Folder",
    "Mailbox",
    "Message",
    "OutboundMessage",
    "OutboundRecipient",
]
