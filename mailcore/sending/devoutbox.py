"""The development outbox: system mail for addresses not hosted here, kept for operators.

In development (DEV_OUTBOX, on with DEBUG) the mail the system itself sends to outside
addresses (sign-up confirmations, password resets, claim notices, bounces and delay
notices) has nowhere to go: a machine without outside DNS would only bounce it. It is
kept here instead, one file per message under DEV_OUTBOX_DIR: `<key>.eml`, the message as
it would have been sent with the envelope on top (Return-Path, then one X-Original-To per
recipient), written and fsynced before the caller goes on, listed newest first on the
operator's page (/dashboard/outbox/) and announced by one log line that carries the links
in it (the confirmation URL). Files, not rows: nothing in the database or its migrations
exists for development alone, and a developer can open a file in any mail program.
Production (DEV_OUTBOX off) queues such mail as before.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from mailcore.message.summary import decode_text, split_header_block
from mailcore.store.blobs import write_durably

log = logging.getLogger("mailcore.outbox")

# <UTC time>-<random>: sorts by time, and is all a URL may name.
KEY = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{12}")
_KEY_TIME = "%Y%m%dT%H%M%S"
_ENVELOPE_FIELD = re.compile(rb"^(Return-Path|X-Original-To): ?<?([^>\r\n]*)>?\r\n", re.I)
_LINK = re.compile(r"https?://[^\s<>\"']+", re.I)
_LINKS_LOGGED = 3


@dataclass(frozen=True)
class Kept:
    """One message in the outbox."""

    key: str
    kept_at: datetime
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes  # the message as sent, without the envelope fields on top
    subject: str

    @property
    def links(self) -> list[str]:
        return links_in(self.raw)


def enabled() -> bool:
    """Return whether system mail for outside addresses goes to the outbox (development)."""
    return bool(settings.DEV_OUTBOX)


def _folder() -> Path:
    return Path(settings.DEV_OUTBOX_DIR)


def keep(raw: bytes, mail_from: str, recipients: Iterable[str]) -> str:
    """Store a message for outside recipients durably; log its links; return its key."""
    recipients = sorted(set(recipients))
    now = datetime.now(UTC)
    key = f"{now.strftime(_KEY_TIME)}-{secrets.token_hex(6)}"
    envelope = f"Return-Path: <{mail_from}>\r\n" + "".join(
        f"X-Original-To: <{r}>\r\n" for r in recipients)
    folder = _folder()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_durably(folder / f"{key}.eml", envelope.encode("utf-8", "surrogateescape") + raw)
    kept = _read(key)
    found = kept.links if kept else []
    shown = " ".join(found[:_LINKS_LOGGED]) or "(no links)"
    log.info("dev outbox: kept %s to %s, subject %r: %s", key, ", ".join(recipients),
             kept.subject if kept else "", shown)
    return key


def listing(limit: int = 200) -> list[Kept]:
    """Return the newest messages first (at most limit)."""
    try:
        names = [p.stem for p in _folder().glob("*.eml")]
    except OSError:
        return []
    keys = sorted((n for n in names if KEY.fullmatch(n)), reverse=True)[:limit]
    return [kept for kept in map(_read, keys) if kept is not None]


def get(key: str) -> Kept | None:
    """Return one message by its key, or None."""
    return _read(key) if KEY.fullmatch(key) else None


def clear() -> int:
    """Delete every message in the outbox; return how many."""
    removed = 0
    for path in _folder().glob("*.eml"):
        if KEY.fullmatch(path.stem):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _read(key: str) -> Kept | None:
    try:
        data = (_folder() / f"{key}.eml").read_bytes()
    except OSError:
        return None
    mail_from, recipients = "", []
    while match := _ENVELOPE_FIELD.match(data):
        value = match.group(2).decode("utf-8", "replace")
        if match.group(1).lower() == b"return-path":
            mail_from = value
        else:
            recipients.append(value)
        data = data[match.end():]
    kept_at = datetime.strptime(key.split("-")[0], _KEY_TIME).replace(tzinfo=UTC)
    return Kept(key, kept_at, mail_from, tuple(recipients), data, _subject(data))


def _subject(raw: bytes) -> str:
    headers = email.message_from_bytes(split_header_block(raw), policy=email.policy.compat32)
    return " ".join(decode_text(str(headers.get("subject", ""))).split())


def links_in(raw: bytes) -> list[str]:
    """Return the web links in a message's text (its plain part, else its HTML), in order."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain", "html"))
    try:
        text = body.get_content() if body is not None else ""
    except (LookupError, ValueError, AttributeError):
        text = ""
    seen: list[str] = []
    for match in _LINK.finditer(text if isinstance(text, str) else ""):
        link = match.group(0).rstrip(".,;:!?)]}")
        if link not in seen:
            seen.append(link)
    return seen
