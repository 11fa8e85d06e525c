"""A mailbox's own webmail settings.

Only the display name has a home today (Mailbox.display_name). A signature and the
vacation auto-reply (mailcore.webmail.vacation) need a settings row per mailbox, and
vacation a record of whom it answered; until those tables exist they are not offered.
"""

from __future__ import annotations

from mailcore.models import Mailbox


def set_display_name(mailbox: Mailbox, name: str) -> None:
    """Set the name shown beside the mailbox's address in the mail it sends."""
    mailbox.display_name = " ".join(name.replace("\r", " ").replace("\n", " ").split())[:200]
    mailbox.save(update_fields=["display_name"])
