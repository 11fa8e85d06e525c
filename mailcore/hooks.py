"""Hooks: how a lower layer asks for work above it (Celery tasks) without importing it.

The store, the outbound queue and the customer services sit below the Celery tasks
(mailcore/tasks.py imports them), so they cannot import the tasks without a circle. They
report what happened through one of the few hook points here instead, and the app
installs the implementations once at start-up (MailcoreConfig.ready installs
mailcore.tasks.HOOKS). One implementation per hook point, not a list of receivers: what
runs is named in one place, and business rules do not hide in signal-like receivers.
Tests replace an implementation with monkeypatch.setattr(hooks.installed, name, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Arrival:
    """A message just committed to these mailboxes' folder (after the transaction)."""

    mailbox_ids: list[int]
    blob_key: str
    mail_from: str  # the envelope sender; "" for a bounce
    folder: str
    junk: bool = False  # filed in each mailbox's Junk folder instead of folder


@dataclass(frozen=True)
class Judged:
    """A user filed messages into Junk (spam) or out of it (ham), after the transaction."""

    mailbox_id: int
    blob_keys: list[str]
    spam: bool


def _not_installed(*args: object) -> None:
    raise RuntimeError("mailcore hooks are not installed: is mailcore in INSTALLED_APPS?")


@dataclass
class Hooks:
    """The hook points, each with the one function that answers it."""

    # Mail was stored for local mailboxes (vacation replies answer it).
    arrived: Callable[[Arrival], None] = _not_installed
    # These queued outbound messages have recipients due now: try them (the periodic
    # sweep finds them anyway should this fail).
    outbound_due: Callable[[list[int]], None] = _not_installed
    # A customer's domain was deactivated for removal: delete its data.
    domain_deactivated: Callable[[int], None] = _not_installed
    # A user moved (or copied) messages into Junk or out of it: teach the spam filter.
    judged: Callable[[Judged], None] = _not_installed


installed = Hooks()


def install(hooks: Hooks) -> None:
    """Make these the implementations every hook point calls from now on."""
    installed.arrived = hooks.arrived
    installed.outbound_due = hooks.outbound_due
    installed.domain_deactivated = hooks.domain_deactivated
    installed.judged = hooks.judged


def arrived(arrival: Arrival) -> None:
    installed.arrived(arrival)


def outbound_due(message_ids: list[int]) -> None:
    installed.outbound_due(message_ids)


def domain_deactivated(domain_id: int) -> None:
    installed.domain_deactivated(domain_id)


def judged(judgement: Judged) -> None:
    installed.judged(judgement)
