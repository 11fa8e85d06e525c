"""A mailbox user's own credentials: changing the password, and the app passwords.

The current password is asked before the password changes or an app password is made,
and checked under the login throttle (mailcore.ratelimit) as any login is: a stolen web
session alone cannot take the mailbox over. Only the mailbox password counts as current,
never an app password. The webmail's sessions hold a fingerprint of the mailbox password
(panel.webmail.auth), so a change ends every other web session of the mailbox.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from mailcore import directory, passwords, ratelimit
from mailcore.directory import LoginRefused
from mailcore.models import AppPassword, Mailbox


class NoSuchAppPassword(Exception):
    """No app password with this id belongs to the mailbox."""


def check_current(mailbox_id: int, password: str, peer_ip: str) -> Mailbox:
    """Return the mailbox if password is its own password; else raise LoginRefused."""
    mailbox = Mailbox.objects.select_related("domain").get(pk=mailbox_id)
    try:
        attempt = ratelimit.begin(mailbox.address, peer_ip)
    except ratelimit.Refused as refused:
        raise LoginRefused(rate_limited=True, delay=ratelimit.delay_for(
            settings.AUTH_MAX_FAILURES), retry_after=refused.retry_after,
            busy=refused.busy) from None
    try:
        matched = passwords.check_password(mailbox.address, password, mailbox.password_hash)
    except BaseException:
        attempt.abandon()
        raise
    if not matched:
        raise LoginRefused(delay=attempt.failed())
    attempt.succeeded()
    return mailbox


def change_password(mailbox_id: int, current: str, new: str, peer_ip: str) -> None:
    """Set a new mailbox password once the current one is confirmed (LoginRefused if not)."""
    directory.set_password(check_current(mailbox_id, current, peer_ip), new)


def app_passwords(mailbox_id: int) -> QuerySet[AppPassword]:
    return AppPassword.objects.filter(mailbox_id=mailbox_id).order_by("name", "pk")


def add_app_password(mailbox_id: int, current: str, name: str, peer_ip: str
                     ) -> tuple[AppPassword, str]:
    """Make an app password once the current password is confirmed; return it and its secret.

    Raise LoginRefused for a wrong password, DirectoryError for a bad name or too many.
    """
    return directory.add_app_password(check_current(mailbox_id, current, peer_ip), name)


def revoke_app_password(mailbox_id: int, app_id: int) -> AppPassword:
    """Delete one of the mailbox's app passwords (its sessions end on their next request)."""
    app = AppPassword.objects.filter(mailbox_id=mailbox_id, pk=app_id).first()
    if app is None:
        raise NoSuchAppPassword(app_id)
    app.delete()
    return app
