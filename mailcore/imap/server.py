"""The IMAP listener: plain with STARTTLS, or implicit TLS (IMAPS)."""

from __future__ import annotations

import asyncio
import ssl

from django.conf import settings

from mailcore.imap import encode, replies
from mailcore.imap.session import IMAPSession
from mailcore.listeners import Connections


async def start_imap(host: str, port: int, connections: Connections, *,
                     tls: ssl.SSLContext, implicit_tls: bool) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = IMAPSession(reader, writer, tls, secure=implicit_tls)
        task = asyncio.current_task()

        def abort() -> None:
            if not writer.is_closing():
                writer.write(encode.untagged_status("BYE", replies.SHUTTING_DOWN))
            if task is not None:
                task.cancel()

        connections.add(session, abort)
        try:
            await session.run()
        except asyncio.CancelledError:
            writer.close()
        finally:
            connections.discard(session)

    # The reader's limit bounds one line; literals are read by size, not by line.
    return await asyncio.start_server(
        serve, host, port, ssl=tls if implicit_tls else None, limit=settings.IMAP_MAX_LINE,
        ssl_handshake_timeout=30 if implicit_tls else None,
    )
