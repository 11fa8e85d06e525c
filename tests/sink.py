"""A loopback SMTP peer for outbound tests: it answers as scripted and keeps what it accepts."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from tests.servers import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SinkHandler:
    """Reply to RCPT and DATA from queues of scripted replies (default: accept)."""

    rcpt_replies: deque[str] = field(default_factory=deque)
    data_replies: deque[str] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    connections: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
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
                                          envelope.original_content))
        return reply


class Sink:
    """An SMTP server on 127.0.0.1 and a free port, in its own thread."""

    def __init__(self) -> None:
        self.handler = SinkHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=True)

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def received(self) -> list[Received]:
        return self.handler.received

