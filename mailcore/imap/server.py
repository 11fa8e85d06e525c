"""The IMAP listener: plain with STARTTLS, or implicit TLS (IMAPS)."""

from __future__ import annotations

import asyncio
import ssl

from django.conf import settings

from mailcore.imap import encode, replies
from mailcore.imap.session import IMAPSession
from mailcore.listeners import Connections, start_stream_listener
from mailcore.proxy import TrustedProxies


async def start_imap(host: str, port: int, connections: Connections, *,
                     tls: ssl.SSLContext, implicit_tls: bool,
                     trusted: TrustedProxies) -> asyncio.Server:
    # The reader's limit bounds one line; literals are read by size, not by line.
    return await start_stream_listener(
        "imaps" if implicit_tls else "imap", host, port, connections,
        session=lambda reader, writer, peer: IMAPSession(
            reader, writer, tls, secure=implicit_tls, peer=peer),
        farewell=encode.untagged_status("BYE", replies.SHUTTING_DOWN),
        tls=tls, implicit_tls=implicit_tls, trusted=trusted, limit=settings.IMAP_MAX_LINE,
    )
