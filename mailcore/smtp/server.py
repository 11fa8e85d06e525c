"""The SMTP listener: aiosmtpd's protocol with our replies, limits, and the inbound handler.

aiosmtpd is reached through mailcore.smtp.adapter only (its public API, and the few hooks
the adapter pins); this module uses no private name of aiosmtpd.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.utils import format_datetime

from aiosmtpd.smtp import Envelope, Session, TLSSetupException, syntax
from django.conf import settings
from django.utils import timezone

from mailcore import dbpool, srs, stats
from mailcore.directory import Resolution, Route, awaits_proof, resolve
from mailcore.dkim import arc_seal
from mailcore.inbound import pipeline, refusals
from mailcore.inbound.authresults import strip_ours
from mailcore.inbound.spam import strip_spam_fields
from mailcore.inbound.verdict import Action, Verdict
from mailcore.listeners import Connections, accepting, listen_args
from mailcore.message.summary import split_header_block
from mailcore.proxy import Peer, TrustedProxies
from mailcore.sessions import SessionLog, new_session_id
from mailcore.smtp import adapter, replies
from mailcore.store.delivery import QuotaExceeded, deliver

_RECEIVED = re.compile(rb"^Received:", re.I | re.M)
# Control characters, and the surrogates aiosmtpd decodes invalid UTF-8 to.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# Syntax and sequence errors: the replies that spend a session's error budget. Refused
# recipients do not (a list's stale addresses are no abuse), nor a message too big.
_BAD_COMMAND_CODES = frozenset({500, 501, 502, 503, 504, 553, 555})


class SMTPSession(adapter.SMTPProtocol):
    """One SMTP connection: enhanced status codes on every reply, and an error budget."""

    # Deviation: RFC 5321 section 4.5.3.1.6 caps lines at 1000 octets, but real senders
    # exceed it (long HTML lines); refusing would bounce legitimate mail. Commands keep
    # aiosmtpd's 512-octet limit.
    line_length_limit = 64 * 1024
    protocol = "smtp"  # the name in the session log

    def __init__(self, handler: InboundHandler, connections: Connections, *, peer: Peer,
                 **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.connections = connections
        # The client's address: the socket's, or the one a trusted proxy's header named.
        self.client = peer
        self.session_id = new_session_id()
        self.log: SessionLog | None = None
        self._greeting_or_ehlo = True
        self._errors = 0
        self._disconnected = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again with the TLS transport
        super().connection_made(transport)
        # aiosmtpd takes the socket's address (again after STARTTLS, for a new Session);
        # the Received field, logins and throttles read session.peer.
        assert self.session is not None
        self.session.peer = (self.client.ip, self.client.port)
        if first:
            self.log = SessionLog(self.protocol, self.session_id, self.client.ip)
            self.log.connected(self.client)
            self.connections.add(self, self._abort)

    def connection_lost(self, error: Exception | None) -> None:
        if self.log and not self._disconnected:
            self.log.info("disconnect")
        self._disconnected = True
        self.connections.discard(self)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        self.connections.working(self)
        super().data_received(data)

    def _abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            line = replies.SHUTTING_DOWN.format(hostname=self.hostname)
            self.transport.write(line.encode() + b"\r\n")
            self.transport.close()

    def timed_out(self) -> None:
        # Deviation from aiosmtpd: the timeout is for idleness (RFC 5321 section 4.5.3.2), so
        # a big message on a slow link is not cut off (see adapter); and say why.
        if self.transport is not None and not self.transport.is_closing():
            line = replies.TIMEOUT.format(hostname=self.hostname)
            self.transport.write(line.encode() + b"\r\n")
            if self.log:
                self.log.info("timeout")
        super().timed_out()

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

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str | None) -> None:
        # RFC 3207 section 4.2: no second TLS layer (aiosmtpd would try one, and fail).
        # Without a context (implicit TLS) aiosmtpd's "454 TLS not available" stands.
        if self.tls_context is not None and self.tls_active():
            await self.push(replies.TLS_ALREADY_ACTIVE.format())
            return
        await super().smtp_STARTTLS(arg)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        # RFC 5321 section 4.1.1.2. aiosmtpd parses the path with the stdlib's header
        # parser, which raises IndexError or AttributeError on a truncated path ("<",
        # "<a@"): refuse such a path here, as Postfix does, and count it as a syntax error.
        if _malformed_path(arg, "FROM:"):
            if not (await self.check_helo_needed() or await self.check_auth_needed("MAIL")):
                await self.push(replies.SENDER_SYNTAX.format())
            return
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        # RFC 5321 section 4.1.1.3; a path that does not parse, as in smtp_MAIL.
        if _malformed_path(arg, "TO:"):
            if await self.check_helo_needed() or await self.check_auth_needed("RCPT"):
                return
            assert self.envelope is not None
            if not self.envelope.mail_from:
                await self.push(replies.NEED_SENDER.format())
            else:
                await self.push(replies.BAD_RECIPIENT.format())
            return
        await super().smtp_RCPT(arg)

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: str | None) -> None:
        # RFC 5321 section 4.1.1.6; a path that does not parse, as in smtp_MAIL, gets the
        # reply aiosmtpd gives one its parser refuses cleanly.
        if _malformed_path(arg, ""):
            if not await self.check_auth_needed("VRFY"):
                await self.push(replies.CANNOT_VRFY.format(address=arg))
            return
        await super().smtp_VRFY(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        # RFC 5321 sections 4.1.1.4 (DATA) and 4.5.2 (transparency).
        # Deviation from aiosmtpd: a line may end in a bare LF (or hold a bare CR) and is
        # stored with CRLF, as Postfix's "normalize" does, so long messages from sloppy
        # senders are not refused as one overlong line. Only CRLF.CRLF ends the data, so
        # "\n.\n" cannot smuggle in a second message (SMTP smuggling).
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push(replies.NEED_RECIPIENT.format())
            return
        if arg:
            await self.push(replies.DATA_SYNTAX.format())
            return
        await self.push(replies.START_DATA.format())
        data, refusal = await self._read_data()
        if refusal is not None:
            self.envelope = Envelope()  # after DATA, a new transaction (as aiosmtpd does)
            await self.push(refusal.format())
            return
        self.envelope.content = self.envelope.original_content = bytes(data)
        del data  # the handler holds the one copy from here on
        try:
            status = await self.event_handler.handle_DATA(self, self.session, self.envelope)
        finally:
            self.envelope = Envelope()
        await self.push(status)

    async def _read_data(self) -> tuple[bytearray, replies.Reply | None]:
        """Read lines up to CRLF.CRLF; return them canonical, or why the message is refused.

        One growing buffer, not a list of lines: a line object costs more memory than a
        line of mail, and joining them would hold the message twice.
        """
        data = bytearray()
        refusal: replies.Reply | None = None
        size = 0
        tail = b"\r\n"  # the last two bytes read: the data starts at a line's start
        reader = self.line_reader()
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                # Keep reading to the end of the data, then refuse (RFC 5321 section 4.2.5).
                line = await reader.read(exc.consumed)
                refusal = refusal or replies.LINE_TOO_LONG
            else:
                if line == b".\r\n" and tail == b"\r\n":
                    return data, refusal
            size += len(line)
            if refusal is None and self.data_size_limit and size > self.data_size_limit:
                refusal = replies.MESSAGE_TOO_BIG
            if refusal is None and b"\0" in line:
                refusal = replies.MESSAGE_HAS_NUL
            if refusal is None:
                data += _canonical_line(line)
            elif data:
                data.clear()  # nothing will be stored: do not hold on to it
            tail = (tail + line)[-2:]

    async def handle_exception(self, error: Exception) -> str:
        """Log an unexpected error with the session id; never echo its text to the peer."""
        if isinstance(error, TLSSetupException):
            # A peer that gives up on the handshake (or cannot do it) is not our fault;
            # aiosmtpd closes the connection and sends nothing.
            if self.log:
                self.log.info("tls handshake failed: %r", error.__cause__)
            return ""
        if self.log:
            self.log.internal_error("command")
        return replies.TEMPORARY_FAILURE.format(session=self.session_id)

    async def push(self, status: str | bytes) -> None:
        """Send a reply, adding an enhanced status code (RFC 2034) where aiosmtpd left none.

        After a final reply with nothing more sent, the session waits for the client: a
        shutdown then says 421 at once instead of after the grace period.
        """
        await self._push(status)
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
        if text[3:4] == " " and text[:3] not in _INTERMEDIATE and not self.input_pending():
            self.connections.waiting(self)

    async def _push(self, status: str | bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # closed (for errors, a timeout, or by the peer): nothing more to say
        if isinstance(status, bytes):
            status = status.decode("utf-8", "replace")
        # Some of aiosmtpd's replies quote the client; never echo control bytes or bad UTF-8.
        status = _UNSAFE.sub("?", status)
        code = int(status[:3]) if status[:3].isdigit() else 0
        if self._greeting_or_ehlo and code in (220, 250):
            await super().push(status)
            if code == 220:
                self._greeting_or_ehlo = False
            return
        if adapter.ends_for_unknown_commands(status):
            # RFC 5321 section 3.8: a server closing the connection says 421.
            await self.close_with(replies.TOO_MANY_ERRORS, "too many errors")
            return
        await super().push(adapter.with_enhanced_status(status))
        if code in _BAD_COMMAND_CODES:
            self._errors += 1
            if self._errors >= settings.SMTP_MAX_BAD_COMMANDS:
                await self.close_with(replies.TOO_MANY_ERRORS, "too many errors")

    async def close_with(self, reply: replies.Reply, reason: str) -> None:
        """Say this 421 reply and hang up; commands pipelined behind are not run.

        Call it from a command: it ends the task that runs the session's commands.
        """
        if self.log:
            self.log.warning(reason)
        await super().push(reply.format(hostname=self.hostname))
        if self.transport is not None:
            self.transport.close()
        commands = asyncio.current_task()
        if commands is not None:
            commands.cancel()
            # A cancel only lands where the task next suspends, and reading a line that is
            # already buffered does not suspend: without this, pipelined commands would run
            # on, writing to a closed transport (which a TLS one refuses with an
            # AttributeError). Suspend now, so the cancel ends the session here.
            await asyncio.sleep(0)


def _canonical_line(line: bytes) -> bytes:
    """Return a DATA line un-dot-stuffed (RFC 5321 section 4.5.2), ending in CRLF."""
    line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    if line.startswith(b"."):
        line = line[1:]
    return line.replace(b"\r", b"\r\n") + b"\r\n"


class InboundHandler:
    """Receive mail for hosted domains: check each recipient at RCPT, judge and store at DATA.

    steps: the inbound checks (mailcore.inbound.pipeline) each message goes through.
    """

    def __init__(self, steps: list[pipeline.Step] | None = None) -> None:
        self.steps = pipeline.steps() if steps is None else steps

    async def handle_EHLO(self, server: SMTPSession, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        # RFC 5321 section 4.1.1.1; RFC 2920 (PIPELINING); RFC 2034 (ENHANCEDSTATUSCODES).
        session.host_name = hostname
        lines = [r for r in responses[:-1] if not r.startswith("250-AUTH")]
        lines += ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]
        return lines

    async def handle_MAIL(self, server: SMTPSession, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        # RFC 5321 section 4.1.1.2. The null reverse-path of a bounce is allowed; aiosmtpd
        # hands it over as "<>" (and needs mail_from truthy to allow RCPT).
        if address != "<>" and not _plausible_sender(address):
            return replies.BAD_SENDER.format()
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
        if is_unsafe(address):  # control characters, or invalid UTF-8
            return replies.BAD_RECIPIENT.format()
        if srs.looks_like(address) and _reverse_path(envelope):
            # An SRS address of ours leads back to the sender of a message we forwarded:
            # open to bounces only, so nobody relays through it to that sender.
            return replies.SRS_BOUNCES_ONLY.format()
        resolution, unproven = await dbpool.run(_resolve_recipient, address)
        if unproven:
            stats.tally.add("rejected")
            return replies.DOMAIN_NOT_VERIFIED.format(domain=address.rpartition("@")[2])
        refusal = _REFUSALS.get(resolution.route)
        if refusal is not None:
            stats.tally.add("rejected")
            return refusal.format()
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        envelope.local_ids |= resolution.mailbox_ids
        envelope.remote |= resolution.remote
        server.log.info("rcpt to=<%s>", address)
        return replies.RECIPIENT_OK.format()

    async def handle_DATA(self, server: SMTPSession, session: Session,
                          envelope: Envelope) -> str:
        # RFC 5321 section 4.1.1.4: reply 250 only once the message is durably stored.
        # The session has already refused NUL bytes and made every line end in CRLF.
        content: bytes = envelope.original_content
        if hop_count(content) >= settings.SMTP_MAX_RECEIVED_HEADERS:
            return replies.LOOP_DETECTED.format()
        verdict = await self.judge(server, session, envelope)
        if verdict.refused:
            await _keep_refusal(server, envelope, verdict)
            return _refusal(server, envelope, verdict)
        # RFC 8601 section 5: only we speak for our authserv-id.
        content = strip_ours(content, settings.MAIL_HOSTNAME)
        if verdict.result("spam"):
            content = strip_spam_fields(content)  # the sender's own say on its spamminess
        raw = (return_path(envelope) + b"".join(verdict.headers)
               + received_header(server, session, envelope) + content)
        junk = verdict.action == Action.JUNK
        # Store with one copy of the message in memory, not two: raw from here on.
        envelope.content = envelope.original_content = content = None
        try:
            if envelope.remote and verdict.headers:
                # RFC 8617: what we forward carries our authentication results, sealed.
                raw = await dbpool.run(arc_seal, raw, _forwarding_domain(envelope),
                                       settings.MAIL_HOSTNAME)
            await dbpool.run(deliver, raw, _reverse_path(envelope), envelope.local_ids,
                             envelope.remote, junk=junk, forward_from=_forward_from(envelope))
        except QuotaExceeded as exc:
            return replies.MAILBOX_FULL_FOR_MESSAGE.format(addresses=", ".join(exc.addresses))
        except Exception:
            server.log.internal_error("DATA")
            return replies.TEMPORARY_FAILURE.format(session=server.session_id)
        server.log.info("accepted from=<%s> rcpts=%d size=%d%s", _reverse_path(envelope),
                        len(envelope.rcpt_tos), len(raw),
                        f" junk ({verdict.reason})" if junk else "")
        stats.tally.add("received")
        stats.tally.add("junk" if junk else "inbox")
        if verdict.result("spam") == "unscanned":
            stats.tally.add("unscanned")
        return replies.QUEUED.format(queue_id=server.session_id)

    async def judge(self, server: SMTPSession, session: Session,
                    envelope: Envelope) -> Verdict:
        """Return what the inbound checks make of the message in the envelope."""
        incoming = pipeline.Incoming(
            content=envelope.original_content, client_ip=server.client.ip,
            helo=session.host_name or "", mail_from=_reverse_path(envelope),
            recipients=tuple(envelope.rcpt_tos), mailbox_ids=frozenset(envelope.local_ids),
            session_id=server.session_id)
        return await pipeline.judge(incoming, self.steps)


def _forwarding_domain(envelope: Envelope) -> str:
    """Return the domain that forwards the message: the first recipient's (all are ours)."""
    return envelope.rcpt_tos[0].rpartition("@")[2].lower()


def _forward_from(envelope: Envelope) -> str | None:
    """Return the envelope sender for the copies we forward to other domains: rewritten by
    SRS at the forwarding domain, so SPF holds at the next hop."""
    if not envelope.remote:
        return None
    return srs.forward(_reverse_path(envelope), _forwarding_domain(envelope))


def _refusal(server: SMTPSession, envelope: Envelope, verdict: Verdict) -> str:
    """Return the reply that refuses a message at the end of DATA, and log why."""
    reply = replies.REFUSED if verdict.action == Action.REJECT else replies.REFUSED_FOR_NOW
    server.log.info("refused from=<%s> rcpts=%d: %s", _reverse_path(envelope),
                    len(envelope.rcpt_tos), verdict.reason)
    if verdict.action == Action.REJECT:  # a deferral may yet be delivered
        stats.tally.add("rejected")
    else:
        stats.tally.add("deferred")
    return reply._replace(status=verdict.enhanced_status).format(reason=verdict.reason)


async def _keep_refusal(server: SMTPSession, envelope: Envelope, verdict: Verdict) -> None:
    """Keep the refusal for the recipient domains' owners to see in the panel."""
    try:
        await dbpool.run(refusals.record, list(envelope.rcpt_tos), _reverse_path(envelope),
                         server.client.ip, verdict.action == Action.TEMPFAIL, verdict.reason)
    except Exception as exc:  # the refusal stands without its record
        server.log.warning("could not record the refusal: %r", exc)


def _resolve_recipient(address: str) -> tuple[Resolution, bool]:
    """Resolve a recipient; for a domain not ours, say whether it awaits its owner's proof."""
    resolution = resolve(address)
    return resolution, resolution.route is Route.NOT_HOSTED and awaits_proof(address)


# RFC 5321 section 4.2.1: 3yz replies ask the client for more (DATA's 354, AUTH's 334).
_INTERMEDIATE = ("334", "354")

_REFUSALS = {
    Route.INVALID: replies.BAD_RECIPIENT,
    Route.NOT_HOSTED: replies.RELAY_DENIED,
    Route.UNKNOWN_USER: replies.UNKNOWN_USER,
    Route.OVER_QUOTA: replies.MAILBOX_FULL,
}


def _malformed_path(arg: str | None, keyword: str) -> bool:
    """Return whether a MAIL, RCPT or VRFY argument holds a path that does not parse.

    Parse it as aiosmtpd will (RFC 5321 section 4.1.2 via the stdlib's RFC 5322 parser),
    and call every failure malformed: that parser raises more than HeaderParseError on
    truncated input. A missing argument or keyword is left to aiosmtpd's syntax reply.
    """
    if arg is None or arg[:len(keyword)].upper() != keyword:
        return False
    path = arg[len(keyword):].strip()
    # A plain <dot-atom@domain> path always parses: no need to run the header parser on it.
    if not path or adapter.PLAIN_PATH.match(path):
        return False
    try:
        parsed, _ = get_angle_addr(path) if path.startswith("<") else get_addr_spec(path)
        parsed.addr_spec  # noqa: B018 (computing it can fail too)
    except Exception:
        return True
    return False


def _plausible_sender(address: str) -> bool:
    """Return whether a reverse-path is a mailbox with a domain, free of control bytes."""
    local, at, domain = address.rpartition("@")
    return bool(local and at and domain) and not is_unsafe(address)


def is_unsafe(text: str) -> bool:
    """Return whether text holds control characters or bytes that were not UTF-8."""
    return _UNSAFE.search(text) is not None


def hop_count(content: bytes) -> int:
    """Return how many Received fields a message has collected (RFC 5321 section 6.3)."""
    return len(_RECEIVED.findall(split_header_block(content)))


def _reverse_path(envelope: Envelope) -> str:
    """Return the envelope sender, "" for a bounce's null reverse-path."""
    return "" if envelope.mail_from in (None, "<>") else envelope.mail_from


def return_path(envelope: Envelope) -> bytes:
    """Return the Return-Path field that final delivery adds (RFC 5321 section 4.4)."""
    return f"Return-Path: <{_reverse_path(envelope)}>\r\n".encode("utf-8", "surrogateescape")


def received_header(server: SMTPSession, session: Session, envelope: Envelope,
                    user: str = "", recipient: bool = True) -> bytes:
    """Return this hop's Received field (RFC 5321 section 4.4).

    With user, the session authenticated as that mailbox: the protocol gets RFC 3848's "A"
    and a comment names the user (RFC 4954 section 7). recipient=False leaves out the
    "for" clause, which would show a Bcc recipient to the others.
    """
    peer_ip = session.peer[0] if session.peer else "unknown"
    helo = session.host_name or "unknown"
    if envelope.smtp_utf8:
        protocol = "UTF8SMTPS" if session.ssl else "UTF8SMTP"
    elif session.extended_smtp:
        protocol = "ESMTPS" if session.ssl else "ESMTP"
    else:
        protocol = "SMTPS" if session.ssl else "SMTP"
    if user:
        protocol += "A"
    authenticated = f"\r\n\t(authenticated as {_clean(user)})" if user else ""
    single = recipient and len(envelope.rcpt_tos) == 1
    for_clause = f"\r\n\tfor <{envelope.rcpt_tos[0]}>" if single else ""
    received = (
        f"Received: from {_clean(helo)} ([{peer_ip}]){authenticated}\r\n"
        f"\tby {server.hostname} (mailcore) with {protocol} id {server.session_id}"
        f"{for_clause};\r\n\t{format_datetime(timezone.now())}\r\n"
    )
    return received.encode("utf-8", "surrogateescape")


def _clean(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable() and ch not in "()\\")[:255] or "unknown"


async def start_smtp(host: str, port: int, connections: Connections, *,
                     tls: ssl.SSLContext, trusted: TrustedProxies) -> asyncio.Server:
    handler = InboundHandler()
    loop = asyncio.get_running_loop()

    def factory(peer: Peer) -> SMTPSession:
        return SMTPSession(
            handler, connections, peer=peer,
            hostname=settings.MAIL_HOSTNAME, ident="mailcore ESMTP",
            data_size_limit=settings.MESSAGE_SIZE_LIMIT, enable_SMTPUTF8=True,
            tls_context=tls, timeout=settings.SMTP_TIMEOUT,
            auth_exclude_mechanism=["LOGIN", "PLAIN"], loop=loop,
        )

    return await loop.create_server(accepting("smtp", factory, connections, trusted),
                                    **listen_args(host, port))
