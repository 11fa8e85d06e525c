"""Mail submission (RFC 6409): authenticated users sending, over STARTTLS or implicit TLS."""

from __future__ import annotations

import asyncio
import base64
import ssl

from aiosmtpd.smtp import AuthResult, Envelope, Session, syntax
from django.conf import settings

from mailcore import dbpool, logins, sasl
from mailcore.directory import LoginRefused, Route, plaintext_allowed, resolve
from mailcore.listeners import Connections, accepting, listen_args
from mailcore.principal import Principal
from mailcore.proxy import Peer, TrustedProxies
from mailcore.sending.outgoing import FromRefused, SendLimitReached, send_limit_reached, submit
from mailcore.sending.senders import SenderProblem, sender_problem
from mailcore.smtp import replies
from mailcore.smtp.server import (
    InboundHandler,
    SMTPSession,
    hop_count,
    is_unsafe,
    received_header,
    return_path,
)
from mailcore.store.delivery import QuotaExceeded

# Failed logins one connection may make before it is closed; the throttle's per-address
# and per-account counts (mailcore.ratelimit) span connections.
MAX_AUTH_FAILURES = 3


class SubmissionSession(SMTPSession):
    """One submission connection: AUTH (over TLS) before any mail, a user's limits after."""

    def __init__(self, handler: SubmissionHandler, connections: Connections, *,
                 implicit_tls: bool, **kwargs) -> None:
        # aiosmtpd's auth_require_tls knows TLS only from its own STARTTLS, not implicit TLS;
        # and auth_required with auth_require_tls=False warns on every connection. So both
        # are off, and this class requires them itself: check_auth_needed, smtp_AUTH, and
        # the handler's EHLO (can_authenticate).
        super().__init__(handler, connections, auth_require_tls=False, **kwargs)
        self.implicit_tls = implicit_tls
        self.protocol = "submissions" if implicit_tls else "submission"
        self.auth_failures = 0
        # RFC 8314 section 3: passwords only inside TLS, but as PLAINTEXT_AUTH says, as for
        # IMAP and POP3: "always" is for a TLS-terminating proxy in front, "loopback" lets a
        # client on this machine (development) log in without STARTTLS. The address is the
        # client's: a PROXY header from a trusted balancer named it.
        self.passwords_need_tls = not plaintext_allowed(implicit_tls, self.client.ip)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.implicit_tls and self.session is not None:
            # The Received field says ESMTPSA, and tls_active() is true.
            self.session.ssl = {"cipher": transport.get_extra_info("cipher")}

    def can_authenticate(self) -> bool:
        """Return whether AUTH may be used now: inside TLS, or behind a TLS proxy."""
        return not self.passwords_need_tls or self.tls_active()

    async def check_auth_needed(self, caller_method: str) -> bool:
        """Refuse a command before AUTH (RFC 6409 section 4.3); return whether refused.

        aiosmtpd's MAIL, RCPT, DATA, VRFY and HELP ask this first (pinned by the adapter's
        test); it stands for aiosmtpd's auth_required.
        """
        assert self.session is not None
        if self.session.authenticated:
            return False
        await self.push(replies.AUTH_REQUIRED.format())
        return True

    def principal(self) -> Principal:
        """Return whom this session authenticated as (MAIL, RCPT and DATA need one)."""
        # A method, not a property: aiosmtpd's constructor reads every attribute.
        assert self.session is not None and self.session.authenticated
        return self.session.auth_data

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        # RFC 4954 section 4: "AUTH command is not permitted during a mail transaction".
        if self.envelope is not None and self.envelope.mail_from:
            await self.push(replies.AUTH_IN_TRANSACTION.format())
            return
        # RFC 4954 section 4 and RFC 8314 section 3: no password outside TLS. aiosmtpd
        # answers a missing HELO or a HELO (not EHLO) session first, as it would.
        assert self.session is not None
        if self.session.host_name and self.session.extended_smtp and not self.can_authenticate():
            await self.push(replies.AUTH_NEEDS_TLS.format())
            return
        await super().smtp_AUTH(arg)

    async def challenge(self, text: bytes) -> bytes:
        """Send a 334 challenge; return the client's decoded answer (RFC 4954 section 4)."""
        await self.push("334 " + base64.b64encode(text).decode())
        too_long = False
        reader = self.line_reader()
        while True:
            try:
                line = await reader.readuntil(b"\n")
                break
            except asyncio.LimitOverrunError as exc:
                await reader.read(exc.consumed)
                too_long = True
            except asyncio.IncompleteReadError:
                raise ConnectionResetError("closed during AUTH") from None
        if too_long:
            raise sasl.SASLError("response too long")
        return sasl.decode_response(line)


def _refusal(reply: replies.Reply) -> AuthResult:
    return AuthResult(success=False, handled=False, message=reply.format())


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:200]


class SubmissionHandler(InboundHandler):
    """Take mail from authenticated users, sent as their own addresses, to anyone."""

    async def handle_EHLO(self, server: SubmissionSession, session: Session,
                          envelope: Envelope, hostname: str, responses: list[str]) -> list[str]:
        # RFC 5321 section 4.1.1.1; AUTH (RFC 4954) only over TLS (see can_authenticate).
        session.host_name = hostname
        lines = [r for r in responses[:-1]
                 if server.can_authenticate() or not r.startswith("250-AUTH")]
        return lines + ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    # aiosmtpd calls a handler's auth_<MECHANISM> in place of its own, which would check
    # the password on the event loop; these check it in the database pool.

    async def auth_PLAIN(self, server: SubmissionSession, args: list[str]) -> AuthResult:
        # RFC 4954 section 4 with RFC 4616; the initial response is optional.
        try:
            response = (sasl.decode_response(args[1]) if len(args) > 1
                        else await server.challenge(b""))
            authzid, user, password = sasl.decode_plain(response)
        except sasl.Cancelled:
            return _refusal(replies.AUTH_CANCELLED)
        except sasl.SASLError:
            return _refusal(replies.AUTH_MALFORMED)
        if authzid and authzid.lower() != user.lower():
            # RFC 4616 section 2: acting as someone else needs a right nobody here has.
            return await self._refuse(server, "PLAIN", user, LoginRefused())
        return await self._login(server, "PLAIN", user, password)

    async def auth_LOGIN(self, server: SubmissionSession, args: list[str]) -> AuthResult:
        # The LOGIN mechanism (draft-murchison-sasl-login-00): user name, then password.
        try:
            response = (sasl.decode_response(args[1]) if len(args) > 1
                        else await server.challenge(b"Username:"))
            user = sasl.decode_text(response)
            password = sasl.decode_text(await server.challenge(b"Password:"))
        except sasl.Cancelled:
            return _refusal(replies.AUTH_CANCELLED)
        except sasl.SASLError:
            return _refusal(replies.AUTH_MALFORMED)
        if not user or not password:
            return _refusal(replies.AUTH_MALFORMED)
        return await self._login(server, "LOGIN", user, password)

    async def _login(self, server: SubmissionSession, mechanism: str, user: str,
                     password: str) -> AuthResult:
        assert server.session is not None
        peer_ip = server.session.peer[0] if server.session.peer else ""
        try:
            principal = await logins.log_in(user, password, peer_ip)
        except LoginRefused as exc:
            return await self._refuse(server, mechanism, user, exc)
        server.log.info("auth mechanism=%s user=%s", mechanism, principal.address)
        return AuthResult(success=True, auth_data=principal, message=replies.AUTH_OK.format())

    async def _refuse(self, server: SubmissionSession, mechanism: str, user: str,
                      refused: LoginRefused) -> AuthResult:
        """Refuse a login after the failure delay; close the connection after too many."""
        server.auth_failures += 1
        server.log.info("auth failed mechanism=%s user=%s rate_limited=%s", mechanism,
                        _printable(user), refused.rate_limited)
        # The throttle's delay, growing with failures; only this session waits.
        await asyncio.sleep(refused.delay)
        if server.auth_failures >= MAX_AUTH_FAILURES:
            await server.close_with(replies.AUTH_TOO_MANY_FAILURES, "too many failed logins")
            return AuthResult(success=False, handled=True)
        return _refusal(replies.AUTH_RATE_LIMITED if refused.rate_limited
                        else replies.AUTH_FAILED)

    async def handle_MAIL(self, server: SubmissionSession, session: Session,
                          envelope: Envelope, address: str, mail_options: list[str]) -> str:
        # RFC 6409 section 6.1: the user may only send as an address of theirs. A null
        # reverse-path is for bounces, which users do not send.
        principal = server.principal()
        problem = (SenderProblem.NOT_YOURS if address == "<>" or is_unsafe(address)
                   else await dbpool.run(sender_problem, principal, address))
        if problem is not None:
            server.log.info("refused sender user=%s from=<%s> reason=%s", principal.address,
                            _printable(address), problem.value)
            if problem is SenderProblem.DOMAIN_NOT_VERIFIED:
                return replies.SENDER_DOMAIN_NOT_VERIFIED.format(address=address)
            return replies.SENDER_NOT_YOURS.format(address="" if address == "<>" else address)
        if await dbpool.run(send_limit_reached, principal):
            server.log.info("send limit reached user=%s", principal.address)
            return replies.SEND_LIMIT_REACHED.format(limit=principal.send_limit_per_hour)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.local_ids = set()
        envelope.remote = set()
        return replies.SENDER_OK.format()

    async def handle_RCPT(self, server: SubmissionSession, session: Session,
                          envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        # RFC 5321 section 4.1.1.3; RFC 6409 section 4.3: any domain, for a user who has
        # authenticated. Unknown local users are refused now rather than bounced later.
        limit = server.principal().max_recipients
        if limit and len(envelope.rcpt_tos) >= limit:
            return replies.TOO_MANY_RECIPIENTS.format()
        if is_unsafe(address):
            return replies.BAD_RECIPIENT.format()
        resolution = await dbpool.run(resolve, address)
        if resolution.route is Route.INVALID:
            return replies.BAD_RECIPIENT.format()
        if resolution.route is Route.UNKNOWN_USER:
            return replies.UNKNOWN_USER.format()
        if resolution.route is Route.OVER_QUOTA:
            return replies.MAILBOX_FULL.format()
        if resolution.route is Route.NOT_HOSTED:
            envelope.remote.add(address)
        else:
            envelope.local_ids |= resolution.mailbox_ids
            envelope.remote |= resolution.remote
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        server.log.info("rcpt to=<%s>", address)
        return replies.RECIPIENT_OK.format()

    async def handle_DATA(self, server: SubmissionSession, session: Session,
                          envelope: Envelope) -> str:
        # RFC 6409 section 8: complete and sign the message; reply 250 only once it is
        # stored for local recipients and durably queued for the others.
        content: bytes = envelope.original_content
        if hop_count(content) >= settings.SMTP_MAX_RECEIVED_HEADERS:
            return replies.LOOP_DETECTED.format()
        principal = server.principal()
        received = received_header(server, session, envelope, user=principal.address,
                                   recipient=False)
        try:
            await dbpool.run(submit, content, principal=principal, mail_from=envelope.mail_from,
                             local_ids=envelope.local_ids, remote=envelope.remote,
                             received=received, return_path=return_path(envelope))
        except FromRefused as exc:
            server.log.info("refused from header user=%s address=<%s>", principal.address,
                            _printable(exc.address))
            if not exc.address:
                return replies.FROM_MISSING_ADDRESS.format()
            if exc.problem is SenderProblem.DOMAIN_NOT_VERIFIED:
                return replies.FROM_DOMAIN_NOT_VERIFIED.format(address=exc.address)
            return replies.FROM_NOT_YOURS.format(address=exc.address)
        except QuotaExceeded as exc:
            return replies.MAILBOX_FULL_FOR_MESSAGE.format(addresses=", ".join(exc.addresses))
        except SendLimitReached as exc:
            # Another session of this user (on any node) sent the hour's last message
            # between this one's MAIL FROM and now.
            server.log.info("send limit reached user=%s", principal.address)
            return replies.SEND_LIMIT_REACHED.format(limit=exc.args[0])
        except Exception:
            server.log.internal_error("DATA")
            return replies.TEMPORARY_FAILURE.format(session=server.session_id)
        server.log.info("submitted user=%s from=<%s> rcpts=%d local=%d remote=%d size=%d",
                        principal.address, envelope.mail_from, len(envelope.rcpt_tos),
                        len(envelope.local_ids), len(envelope.remote), len(content))
        return replies.QUEUED.format(queue_id=server.session_id)


async def start_submission(host: str, port: int, connections: Connections, *,
                           tls: ssl.SSLContext, implicit_tls: bool,
                           trusted: TrustedProxies) -> asyncio.Server:
    """Listen for submission: STARTTLS (port 587) or implicit TLS (port 465, RFC 8314)."""
    handler = SubmissionHandler()
    loop = asyncio.get_running_loop()
    name = "submissions" if implicit_tls else "submission"

    def factory(peer: Peer) -> SubmissionSession:
        return SubmissionSession(
            handler, connections, implicit_tls=implicit_tls, peer=peer,
            hostname=settings.MAIL_HOSTNAME, ident="mailcore ESMTP submission",
            data_size_limit=settings.MESSAGE_SIZE_LIMIT, enable_SMTPUTF8=True,
            tls_context=None if implicit_tls else tls, timeout=settings.SMTP_TIMEOUT,
            loop=loop,
        )

    # Implicit TLS starts after any PROXY header (see Handover), not in create_server.
    return await loop.create_server(
        accepting(name, factory, connections, trusted, tls=tls if implicit_tls else None),
        **listen_args(host, port))
