"""A loopback SMTP peer for outbound tests: it answers as scripted and keeps what it accepts."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool = False  # the session had switched to TLS (STARTTLS)


@dataclass
class SinkHandler:
    """Reply to RCPT and DATA from queues of scripted replies (default: accept)."""

    rcpt_replies: deque[str] = field(default_factory=deque)
    data_replies: deque[str] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    pipelining: bool = False  # offer PIPELINING (RFC 2920) in the EHLO reply

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads commands in order, however they arrive
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.popleft() if self.rcpt_replies else "250 2.1.5 OK"
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):
        reply = self.data_replies.popleft() if self.data_replies else "250 2.0.0 OK"
        if reply.startswith("250"):
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content, session.ssl is not None))
        return reply


class Sink:
    """An SMTP server on 127.0.0.1 and a port the system picks, on an event loop in a thread.

    Not aiosmtpd's Controller: it cannot listen on port 0 (it connects to the port it was
    given to check that it is up).
    """

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self.tls_context = tls_context  # given: STARTTLS offered (RFC 3207)
        self.handler = SinkHandler()
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    def __enter__(self) -> Sink:
        self.thread.start()
        listening = asyncio.run_coroutine_threadsafe(self.loop.create_server(
            lambda: SMTP(self.handler, enable_SMTPUTF8=True, tls_context=self.tls_context),
            "127.0.0.1", 0), self.loop)
        self.server = listening.result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()
            # End the sessions a test left open, as aiosmtpd's Controller does.
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def received(self) -> list[Received]:
        return self.handler.received

