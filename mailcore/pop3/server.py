"""The POP3 listener: plain with STLS, or implicit TLS (POP3S)."""

from __future__ import annotations

import asyncio
import ssl

from mailcore.listeners import Connections
from mailcore.pop3 import replies
from mailcore.pop3.session import MAX_LINE, POP3Session


async def start_pop3(host: str, port: int, connections: Connections, *,
                     tls: ssl.SSLContext, implicit_tls: bool) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = POP3Session(reader, writer, tls, secure=implicit_tls)
        task = asyncio.current_task()

        def abort() -> None:
            if not writer.is_closing():
                writer.write(replies.SHUTTING_DOWN.encode() + b"\r\n")
            if task is not None:
                task.cancel()

        connections.add(session, abort)
        try:
            await session.run()
        except asyncio.CancelledError:
            writer.close()
        finally:
            connections.discard(session)

    return await asyncio.start_server(
        serve, host, port, ssl=tls if implicit_tls else None, limit=MAX_LINE * 8,
        ssl_handshake_timeout=30 if implicit_tls else None,
    )
