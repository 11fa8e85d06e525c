"""The SMTP listener: aiosmtpd's protocol with our replies, limits, and the inbound handler."""

from __future__ import annotations

import asyncio
import re
import ssl
from email.utils import format_datetime

from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings
from django.utils import timezone

from mailcore import dbpool
from mailcore.directory import Route, resolve
from mailcore.listeners import Connections
from mailcore.sessions import SessionLog, new_session_id
from mailcore.smtp import replies
from mailcore.store.delivery import QuotaExceeded, deliver
from mailcore.store.headers import split_header_block

_CODE = re.compile(r"^(\d{3})([ -])(?!\d\.\d{1,3}\.\d{1,3}\b)(.*)$", re.S)
_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
_RECEIVED = re.compile(rb"^Received:", re.I | re.M)


class SMTPSession(SMTP):
    """One SMTP connection: enhanced status codes on every reply, and an error budget."""

    def __init__(self, handler: InboundHandler, connections: Connections, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.connections = connections
        self.session_id = new_session_id()
        self.log: SessionLog | None = None
        self._greeting_or_ehlo = True
        self._errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again with the TLS transport
        super().connection_made(transport)
        if first:
            peer = transport.get_extra_info("peername") or ("?", 0)
            self.log = SessionLog("smtp", self.session_id, str(peer[0]))
            self.log.info("connect")
            self.connections.add(self, self._abort)

    def connection_lost(self, error: Exception | None) -> None:
        if self.log:
            self.log.info("disconnect")
        self.connections.discard(self)
        super().connection_lost(error)

    def _abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            line = replies.SHUTTING_DOWN.format(hostname=self.hostname)
            self.transport.write(line.encode() + b"\r\n")
            self.transport.close()

    def _timeout_cb(self) -> None:
        # Deviation from aiosmtpd: say why before closing (RFC 5321 section 4.5.3.2).
        if self.transport is not None and not self.transport.is_closing():
            line = replies.TIMEOUT.format(hostname=self.hostname)
            self.transport.write(line.encode() + b"\r\n")
            if self.log:
                self.log.info("timeout")
        super()._timeout_cb()

    async def smtp_EHLO(self, hostname: str) -> None:
        self._greeting_or_ehlo = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._greeting_or_ehlo = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._greeting_or_ehlo = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._greeting_or_ehlo = False

    async def handle_exception(self, error: Exception) -> str:
        """Log an unexpected error with the session id; never echo its text to the peer."""
        if self.log:
            self.log.internal_error("command")
        return replies.TEMPORARY_FAILURE.format(session=self.session_id)

    async def push(self, status: str | bytes) -> None:
        """Send a reply, adding an enhanced status code (RFC 2034) where aiosmtpd left none."""
        if isinstance(status, bytes):
            status = status.decode("utf-8", "replace")
        match = _CODE.match(status)
        if match is None:
            await super().push(status)
            return
        code = int(match.group(1))
        if self._greeting_or_ehlo and code in (220, 250):
            await super().push(status)
            if code == 220:
                self._greeting_or_ehlo = False
            return
        enhanced = replies.DEFAULT_STATUS.get(code)
        if enhanced:
            status = f"{code}{match.group(2)}{enhanced} {match.group(3)}"
        await super().push(status)
        if code >= 500 and code != 552:
            self._errors += 1
            if self._errors >= settings.SMTP_MAX_BAD_COMMANDS and self.transport is not None:
                if self.log:
                    self.log.warning("too many errors")
                await super().push(replies.TOO_MANY_ERRORS.format(hostname=self.hostname))
                self.transport.close()


class InboundHandler:
    """Receive mail for hosted domains: check each recipient at RCPT, store at DATA."""

    async def handle_EHLO(self, server: SMTPSession, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        # RFC 5321 section 4.1.1.1; RFC 2920 (PIPELINING); RFC 2034 (ENHANCEDSTATUSCODES).
        session.host_name = hostname
        lines = [r for r in responses[:-1] if not r.startswith("250-AUTH")]
        lines += ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]
        return lines

    async def handle_MAIL(self, server: SMTPSession, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        # RFC 5321 section 4.1.1.2; an empty reverse-path is a bounce and is allowed.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.local_ids = set()
        envelope.remote = set()
        return replies.SENDER_OK.format()

    async def handle_RCPT(self, server: SMTPSession, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        # RFC 5321 section 4.1.1.3: check the recipient now, so mail is refused, not bounced.
        if len(envelope.rcpt_tos) >= settings.SMTP_MAX_RECIPIENTS:
            return replies.TOO_MANY_RECIPIENTS.format()
        resolution = await dbpool.run(resolve, address)
        if resolution.route is Route.INVALID:
            return replies.BAD_RECIPIENT.format()
        if resolution.route is Route.NOT_HOSTED:
            return replies.RELAY_DENIED.format()
        if resolution.route is Route.UNKNOWN_USER:
            return replies.UNKNOWN_USER.format()
        if resolution.route is Route.OVER_QUOTA:
            return replies.MAILBOX_FULL.format()
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        envelope.local_ids |= resolution.mailbox_ids
        envelope.remote |= resolution.remote
        server.log.info("rcpt to=<%s>", address)
        return replies.RECIPIENT_OK.format()

    async def handle_DATA(self, server: SMTPSession, session: Session,
                          envelope: Envelope) -> str:
        # RFC 5321 section 4.1.1.4: reply 250 only once the message is durably stored.
        content: bytes = envelope.original_content
        if b"\0" in content:
            return replies.MESSAGE_HAS_NUL.format()
        # Deviation: bare LF and bare CR are made CRLF (as Postfix's "normalize"), so
        # the stored message is canonical for POP3 and IMAP.
        content = _BARE_CR.sub(b"\r\n", _BARE_LF.sub(b"\r\n", content))
        hops = len(_RECEIVED.findall(split_header_block(content)))
        if hops >= settings.SMTP_MAX_RECEIVED_HEADERS:
            return replies.LOOP_DETECTED.format()
        raw = trace_headers(server, session, envelope) + content
        try:
            await dbpool.run(deliver, raw, envelope.mail_from or "", envelope.local_ids,
                             envelope.remote)
        except QuotaExceeded as exc:
            return replies.MAILBOX_FULL_FOR_MESSAGE.format(addresses=", ".join(exc.addresses))
        except Exception:
            server.log.internal_error("DATA")
            return replies.TEMPORARY_FAILURE.format(session=server.session_id)
        server.log.info("accepted from=<%s> rcpts=%d size=%d", envelope.mail_from,
                        len(envelope.rcpt_tos), len(raw))
        return replies.QUEUED.format(queue_id=server.session_id)


def trace_headers(server: SMTPSession, session: Session, envelope: Envelope) -> bytes:
    """Return the Return-Path and Received fields to put on top (RFC 5321 section 4.4)."""
    peer_ip = session.peer[0] if session.peer else "unknown"
    helo = session.host_name or "unknown"
    if envelope.smtp_utf8:
        protocol = "UTF8SMTPS" if session.ssl else "UTF8SMTP"
    elif session.extended_smtp:
        protocol = "ESMTPS" if session.ssl else "ESMTP"
    else:
        protocol = "SMTPS" if session.ssl else "SMTP"
    recipient = f"\r\n\tfor <{envelope.rcpt_tos[0]}>" if len(envelope.rcpt_tos) == 1 else ""
    received = (
        f"Received: from {_clean(helo)} ([{peer_ip}])\r\n"
        f"\tby {server.hostname} (mailcore) with {protocol} id {server.session_id}"
        f"{recipient};\r\n\t{format_datetime(timezone.now())}\r\n"
    )
    return_path = f"Return-Path: <{envelope.mail_from or ''}>\r\n"
    return (return_path + received).encode("utf-8", "surrogateescape")


def _clean(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable() and ch not in "()\\")[:255] or "unknown"


async def start_smtp(host: str, port: int, connections: Connections, *,
                     tls: ssl.SSLContext) -> asyncio.Server:
    handler = InboundHandler()
    loop = asyncio.get_running_loop()

    def factory() -> SMTPSession:
        return SMTPSession(
            handler, connections,
            hostname=settings.MAIL_HOSTNAME, ident="mailcore ESMTP",
            data_size_limit=settings.MESSAGE_SIZE_LIMIT, enable_SMTPUTF8=True,
            tls_context=tls, timeout=settings.SMTP_TIMEOUT,
            auth_exclude_mechanism=["LOGIN", "PLAIN"], loop=loop,
        )

    return await loop.create_server(factory, host, port)
