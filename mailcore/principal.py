"""The principal: who a mail or webmail session acts for, as plain values fixed at login.

Sessions hold a Principal, never a Mailbox model instance: on the event loop a model's
attributes can silently need a query (reading mailbox.address needs its domain loaded),
and a frozen value cannot be changed by one session for another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailcore.models import Mailbox


@dataclass(frozen=True)
class Principal:
    """A logged-in mailbox: its identity, the credential that opened it, and its limits."""

    mailbox_id: int
    address: str
    display_name: str
    domain_id: int
    credential: str  # "password" or "app"
    credential_id: int  # the mailbox's pk, or the app password's
    send_limit_per_hour: int  # 0: no limit
    max_recipients: int  # per message; 0: no limit

    @classmethod
    def of(cls, mailbox: Mailbox, credential: str = "password",
           credential_id: int | None = None) -> Principal:
        """Return the principal of a mailbox (read with its domain: the address needs it)."""
        return cls(
            mailbox_id=mailbox.pk, address=mailbox.address, display_name=mailbox.display_name,
            domain_id=mailbox.domain_id, credential=credential,
            credential_id=mailbox.pk if credential_id is None else credential_id,
            send_limit_per_hour=mailbox.send_limit_per_hour,
            max_recipients=mailbox.max_recipients,
        )
