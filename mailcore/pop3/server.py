"""The POP3 listener: plain with STLS, or implicit TLS (POP3S)."""

from __future__ import annotations

import asyncio
import ssl

from mailcore.listeners import Connections, start_stream_listener
from mailcore.pop3 import replies
from mailcore.pop3.session import MAX_LINE, POP3Session
from mailcore.proxy import TrustedProxies


async def start_pop3(host: str, port: int, connections: Connections, *,
                     tls: ssl.SSLContext, implicit_tls: bool,
                     trusted: TrustedProxies) -> asyncio.Server:
    return await start_stream_listener(
        "pop3s" if implicit_tls else "pop3", host, port, connections,
        session=lambda reader, writer, peer: POP3Session(
            reader, writer, tls, secure=implicit_tls, peer=peer),
        farewell=replies.SHUTTING_DOWN.encode() + b"\r\n",
        tls=tls, implicit_tls=implicit_tls, trusted=trusted, limit=MAX_LINE * 8,
    )
