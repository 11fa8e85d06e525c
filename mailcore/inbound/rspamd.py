"""Rspamd's HTTP protocol: scanning a message (/checkv2) and teaching it (/learnspam, /learnham).

The scan is asynchronous (the SMTP session awaits it on the event loop) and bounded by
RSPAMD_TIMEOUT; learning is synchronous, for the Celery worker. Both speak to the URLs in
the settings and raise Unavailable when Rspamd cannot answer, so callers decide what a
missing filter means.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from django.conf import settings

log = logging.getLogger("mailcore.inbound")

# Rspamd's actions (https://rspamd.com/doc/faq.html#what-are-rspamd-actions).
REJECT, SOFT_REJECT, REWRITE_SUBJECT = "reject", "soft reject", "rewrite subject"
ADD_HEADER, GREYLIST, NO_ACTION = "add header", "greylist", "no action"


class Unavailable(Exception):
    """Rspamd did not answer, or not with a scan: the message could not be scanned."""


@dataclass(frozen=True)
class Scan:
    """Rspamd's answer about one message."""

    action: str
    score: float
    required: float  # the score at which it would reject
    symbols: tuple[str, ...]  # the rules that matched, for the log
    message: str = ""  # Rspamd's reply text for the sender (smtp_message), if any


# One client per event loop: a client holds connections (and an SSL context) for reuse.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary())


def _client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = httpx.AsyncClient(trust_env=False)
    return client


async def check(message: bytes, headers: Sequence[tuple[str, bytes]]) -> Scan:
    """Ask the scanner at RSPAMD_URL about a message; raise Unavailable if it cannot say.

    headers: the protocol's request headers (From, Rcpt, IP, Helo, Hostname, Settings...).
    """
    try:
        reply = await _client().post(f"{settings.RSPAMD_URL}/checkv2", content=message,
                                     headers=list(headers), timeout=settings.RSPAMD_TIMEOUT)
        reply.raise_for_status()
        return parse(reply.content)
    except (httpx.HTTPError, ValueError) as exc:
        raise Unavailable(f"Rspamd at {settings.RSPAMD_URL}: {exc!r}") from None


def parse(body: bytes) -> Scan:
    """Return the Scan in a /checkv2 reply body; raise ValueError if it holds none."""
    data = json.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("action"), str):
        raise ValueError("no action in Rspamd's reply")
    messages = data.get("messages")
    text = messages.get("smtp_message", "") if isinstance(messages, dict) else ""
    symbols = data.get("symbols")
    return Scan(action=data["action"], score=float(data.get("score", 0)),
                required=float(data.get("required_score", 0)),
                symbols=tuple(sorted(symbols)) if isinstance(symbols, dict) else (),
                message=text if isinstance(text, str) else "")


# Learning, for the worker --------------------------------------------------------------------

LEARN_PATHS = {"spam": "/learnspam", "ham": "/learnham"}


def learn(kind: str, message: bytes) -> bool:
    """Teach the controller at RSPAMD_CONTROLLER_URL that a message is spam or ham.

    Return whether it learned (False for a message it will not learn, such as one it
    already learned or one with too few words); raise Unavailable when it cannot be asked,
    so the task tries again later.
    """
    headers = {"Password": settings.RSPAMD_PASSWORD} if settings.RSPAMD_PASSWORD else {}
    url = f"{settings.RSPAMD_CONTROLLER_URL}{LEARN_PATHS[kind]}"
    try:
        reply = httpx.post(url, content=message, headers=headers, trust_env=False,
                           timeout=settings.RSPAMD_TIMEOUT)
    except httpx.HTTPError as exc:
        raise Unavailable(f"Rspamd's controller at {url}: {exc!r}") from None
    if reply.status_code >= 500:
        raise Unavailable(f"Rspamd's controller at {url}: HTTP {reply.status_code}")
    if reply.status_code != 200:
        # 208: already learned; 4xx: too few tokens, or the controller refuses us.
        log.info("rspamd did not learn %s: HTTP %d %s", kind, reply.status_code,
                 reply.text[:200])
        return False
    return True
