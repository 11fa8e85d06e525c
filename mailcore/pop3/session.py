"""One POP3 session: the state machine as a table from verb to (states, handler)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.conf import settings

from mailcore import dbpool, logins
from mailcore.directory import LoginRefused, plaintext_allowed
from mailcore.message.transfer import dot_stuffed
from mailcore.pop3 import replies
from mailcore.principal import Principal
from mailcore.proxy import Peer
from mailcore.sessions import (
    BadSyntax,
    Disconnect,
    ProtocolError,
    Refused,
    StreamSession,
    TemporaryFailure,
)
from mailcore.store import maildrop
from mailcore.store.maildrop import DropMessage

MAX_LINE = 1024  # RFC 2449 allows 255 octets; AUTH PLAIN responses need a little more.
MAX_AUTH_FAILURES = 3
INLINE_READ_LIMIT = 64 * 1024
MAX_ERRORS = 20
LOCK_RETRY_PAUSES = (0.05, 0.1, 0.2, 0.4)
SEND_CHUNK = 256 * 1024
_DIGITS = re.compile(r"[0-9]+")


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"


AUTH = frozenset({State.AUTHORIZATION})
TRANS = frozenset({State.TRANSACTION})
ANY = AUTH | TRANS


@dataclass
class Command:
    states: frozenset[State]
    handler: Callable[[POP3Session, str], Awaitable[None]]
    raw_arg: bool = False  # pass the rest of the line untouched (PASS: spaces are password)


class POP3Session(StreamSession):
    """Serve one connection until QUIT, a timeout, or the peer going away."""

    protocol = "pop3"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 tls: ssl.SSLContext | None, secure: bool, peer: Peer | None = None) -> None:
        super().__init__(reader, writer, tls, secure, peer)
        self.state = State.AUTHORIZATION
        self.user: str | None = None
        self.principal: Principal | None = None  # plain values from login, never a model
        self.mailbox_id: int | None = None
        self.messages: list[DropMessage] = []
        self.deleted: set[int] = set()
        self.auth_failures = 0
        self.errors = 0
        self.lock_refreshed = 0.0
        self.done = False

    # I/O ------------------------------------------------------------------------------------

    async def send(self, line: str) -> None:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self.drain()

    async def send_multiline(self, first: str, body: bytes) -> None:
        """Send a multi-line response: body dot-stuffed and terminated (RFC 1939 section 3)."""
        data = b"".join((first.encode(), b"\r\n", dot_stuffed(body), b".\r\n"))
        if len(data) <= SEND_CHUNK:
            self.writer.write(data)
            await self.drain()
            return
        # In chunks, so the timeout bounds a stalled client, not a slow download.
        view = memoryview(data)
        for start in range(0, len(data), SEND_CHUNK):
            self.writer.write(view[start:start + SEND_CHUNK])
            await self.drain()

    async def drain(self) -> None:
        # A client that stops reading must not hold the session (and its lock) forever.
        # While the transport holds less than a chunk nothing can stall: skip the timed
        # wait (a timer per reply), as writer.drain() would not wait either.
        transport = self.writer.transport
        if transport.get_write_buffer_size() < SEND_CHUNK and not transport.is_closing():
            return
        await self.drain_within(settings.POP3_TIMEOUT)

    async def read_line(self) -> bytes | None:
        """Return one line without its end, or None when the peer has gone."""
        try:
            line = await self.read_line_within(settings.POP3_TIMEOUT)
        except asyncio.IncompleteReadError:
            return None
        if line is None or len(line) > MAX_LINE:
            raise BadSyntax(replies.LINE_TOO_LONG)
        return line.rstrip(b"\r\n")

    # The loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        self.log.connected(self.peer)
        try:
            await self.send(replies.GREETING.format(hostname=settings.MAIL_HOSTNAME))
            while not self.done:
                try:
                    with self.waiting_for_client():
                        line = await self.read_line()
                    if line is None:
                        self.log.info("peer closed connection")
                        return
                    await self.dispatch(line)
                except Disconnect as exc:
                    await self.send(exc.text)
                    return
                except ProtocolError as exc:
                    await self.send(exc.text)
                    self.errors += 1
                    if self.errors >= MAX_ERRORS:
                        await self.send(replies.TOO_MANY_ERRORS)
                        return
        except TimeoutError:
            self.log.info("timeout")
            await self._try_send(replies.TIMEOUT)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            self.log.info("connection lost: %s", type(exc).__name__)
        except Exception:
            self.log.internal_error("session")
            await self._try_send(replies.TEMPORARY_FAILURE.format(session=self.id))
        finally:
            await self.close()

    async def _try_send(self, line: str) -> None:
        try:
            await self.send(line)
        except (ConnectionError, ssl.SSLError, RuntimeError, TimeoutError):
            pass

    async def dispatch(self, line: bytes) -> None:
        if b"\0" in line:
            raise BadSyntax(replies.BAD_SYNTAX.format(usage="NUL in command"))
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise BadSyntax(replies.BAD_SYNTAX.format(usage="invalid UTF-8")) from None
        verb, _, arg = text.lstrip().partition(" ")
        command = COMMANDS.get(verb.rstrip().upper())
        if command is None:
            raise BadSyntax(replies.UNKNOWN_COMMAND)
        if self.state not in command.states:
            raise Refused(replies.WRONG_STATE)
        try:
            if self.state is State.TRANSACTION:
                await self.refresh_lock()
            await command.handler(self, arg if command.raw_arg else arg.strip())
        except (ProtocolError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            raise
        except TimeoutError:
            raise
        except Exception:
            self.log.internal_error(verb.upper())
            raise TemporaryFailure(replies.TEMPORARY_FAILURE.format(session=self.id)) from None

    async def close(self) -> None:
        if self.mailbox_id is not None:
            try:
                await dbpool.run(maildrop.release, self.mailbox_id, self.id)
            except Exception:
                self.log.internal_error("release")
            self.mailbox_id = None
        await self.close_connection()

    # Helpers -------------------------------------------------------------------------------

    def message(self, arg: str) -> tuple[int, DropMessage]:
        """Return (number, message) for a message-number argument that is not deleted."""
        number = _number(arg)
        if number is None:
            raise BadSyntax(replies.BAD_SYNTAX.format(usage="message number expected"))
        if not 1 <= number <= len(self.messages):
            raise Refused(replies.NO_SUCH_MESSAGE)
        msg = self.messages[number - 1]
        if msg.id in self.deleted:
            raise Refused(replies.ALREADY_DELETED.format(number=number))
        return number, msg

    async def read_message(self, msg: DropMessage) -> bytes:
        """Return a message's bytes: small ones read on the loop (a page-cache hit costs
        less than a hop to the pool), large ones in the pool so the loop never stalls."""
        if msg.size <= INLINE_READ_LIMIT:
            return maildrop.read(msg)
        return await dbpool.run(maildrop.read, msg)

    def live(self) -> list[tuple[int, DropMessage]]:
        return [(n, m) for n, m in enumerate(self.messages, 1) if m.id not in self.deleted]

    async def refresh_lock(self) -> None:
        """Keep the maildrop lock alive while commands keep coming; end the session if lost."""
        if time.monotonic() - self.lock_refreshed > settings.POP3_TIMEOUT / 3:
            if not await dbpool.run(maildrop.acquire, self.mailbox_id, self.id, _lock_ttl()):
                raise Disconnect(replies.LOCK_LOST)
            self.lock_refreshed = time.monotonic()

    async def _acquire(self, mailbox_id: int) -> bool:
        """Take the maildrop lock, waiting briefly for a session that is just ending.

        A client that hangs up and reconnects at once must not get [IN-USE] because its
        old session (here or on another node) has not finished releasing the lock yet.
        """
        for pause in (*LOCK_RETRY_PAUSES, None):
            if await dbpool.run(maildrop.acquire, mailbox_id, self.id, _lock_ttl()):
                return True
            if pause is not None:
                await asyncio.sleep(pause)
        return False

    def check_plaintext(self) -> None:
        if not plaintext_allowed(self.secure, self.peer_ip):
            raise Refused(replies.PLAINTEXT_DISALLOWED)

    async def login(self, user: str, password: str) -> None:
        """Open the maildrop for these credentials or raise the reply to send."""
        try:
            principal = await logins.log_in(user, password, self.peer_ip)
        except LoginRefused as exc:
            self.auth_failures += 1
            self.log.info("login failed user=%s rate_limited=%s", user, exc.rate_limited)
            # The throttle's delay, growing with failures; only this session waits.
            await asyncio.sleep(exc.delay)
            if exc.rate_limited:
                if self.auth_failures >= MAX_AUTH_FAILURES:
                    raise Disconnect(replies.AUTH_RATE_LIMITED) from None
                raise Refused(replies.AUTH_RATE_LIMITED) from None
            if self.auth_failures >= MAX_AUTH_FAILURES:
                raise Disconnect(replies.TOO_MANY_FAILURES) from None
            raise Refused(replies.AUTH_FAILED) from None
        if not await self._acquire(principal.mailbox_id):
            self.log.info("maildrop in use user=%s", principal.address)
            raise Refused(replies.IN_USE)
        # Held from here on: close() releases it whatever happens next.
        self.principal = principal
        self.mailbox_id = principal.mailbox_id
        self.lock_refreshed = time.monotonic()
        self.messages = await dbpool.run(maildrop.listing, principal.mailbox_id)
        self.state = State.TRANSACTION
        self.log.info("login user=%s messages=%d", principal.address, len(self.messages))
        await self.send(replies.LOGGED_IN.format(
            count=len(self.messages), size=sum(m.size for m in self.messages)))

    # Handlers ------------------------------------------------------------------------------

    async def do_capa(self, arg: str) -> None:
        # RFC 2449 section 5.
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
                "IMPLEMENTATION mailcore"]
        if self.state is State.AUTHORIZATION:
            if plaintext_allowed(self.secure, self.peer_ip):
                caps += ["USER", "SASL PLAIN"]
            if self.tls is not None and not self.secure:
                caps.append("STLS")
        await self.send_multiline(replies.CAPA, "".join(f"{c}\r\n" for c in caps).encode())

    async def do_stls(self, arg: str) -> None:
        # RFC 2595 section 4.
        if self.secure:
            raise Refused(replies.ALREADY_TLS)
        if self.tls is None:
            raise Refused(replies.TLS_UNAVAILABLE)
        await self.upgrade_to_tls(replies.STLS_OK.encode() + b"\r\n", replies.PIPELINED_STLS,
                                  settings.POP3_TIMEOUT)
        self.user = None  # RFC 2595 section 4: forget what was said before TLS

    async def do_user(self, arg: str) -> None:
        # RFC 1939 section 7 (USER).
        self.check_plaintext()
        if not arg:
            raise BadSyntax(replies.BAD_SYNTAX.format(usage="USER name"))
        self.user = arg
        await self.send(replies.USER_OK)

    async def do_pass(self, arg: str) -> None:
        # RFC 1939 section 7 (PASS): the whole rest of the line is the password.
        self.check_plaintext()
        if self.user is None:
            raise Refused(replies.USER_FIRST)
        user, self.user = self.user, None
        await self.login(user, arg)

    async def do_auth(self, arg: str) -> None:
        # RFC 5034 (SASL), with the PLAIN mechanism (RFC 4616) and an initial response.
        if not arg:
            await self.send_multiline(replies.AUTH_MECHANISMS, b"PLAIN\r\n")
            return
        mechanism, _, initial = arg.partition(" ")
        if mechanism.upper() != "PLAIN":
            raise Refused(replies.UNSUPPORTED_MECHANISM)
        self.check_plaintext()
        if not initial:
            await self.send(replies.AUTH_CONTINUE)
            line = await self.read_line()
            if line is None:
                raise ConnectionResetError
            initial = line.decode("ascii", "replace").strip()
        if initial == "*":
            raise Refused(replies.AUTH_CANCELLED)
        try:
            decoded = base64.b64decode(initial if initial != "=" else "", validate=True)
            authzid, user, password = decoded.decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadSyntax(replies.BAD_SYNTAX.format(usage="invalid SASL PLAIN response")) \
                from None
        # RFC 4616 section 2: acting as someone else needs a right nobody here has.
        if authzid and authzid.lower() != user.lower():
            self.log.info("login refused: authzid differs user=%s", user)
            raise Refused(replies.AUTH_FAILED)
        await self.login(user, password)

    async def do_stat(self, arg: str) -> None:
        # RFC 1939 section 5 (STAT).
        live = self.live()
        await self.send(replies.STAT.format(count=len(live), size=sum(m.size for _, m in live)))

    async def do_list(self, arg: str) -> None:
        # RFC 1939 section 5 (LIST).
        if arg:
            number, msg = self.message(arg)
            await self.send(replies.SCAN_LINE.format(number=number, size=msg.size))
            return
        live = self.live()
        body = "".join(f"{n} {m.size}\r\n" for n, m in live).encode()
        await self.send_multiline(
            replies.SCAN_LIST.format(count=len(live), size=sum(m.size for _, m in live)), body)

    async def do_uidl(self, arg: str) -> None:
        # RFC 1939 section 7 (UIDL).
        if arg:
            number, msg = self.message(arg)
            await self.send(replies.UIDL_LINE.format(number=number, uidl=msg.uidl))
            return
        body = "".join(f"{n} {m.uidl}\r\n" for n, m in self.live()).encode()
        await self.send_multiline(replies.UIDL_LIST, body)

    async def do_retr(self, arg: str) -> None:
        # RFC 1939 section 5 (RETR).
        _, msg = self.message(arg)
        data = await self.read_message(msg)
        await self.send_multiline(replies.RETR.format(size=msg.size), data)

    async def do_top(self, arg: str) -> None:
        # RFC 1939 section 7 (TOP): the header, the blank line, then n lines of the body,
        # as the exact bytes RETR would send up to there.
        parts = arg.split()
        count = _number(parts[1]) if len(parts) == 2 else None
        if count is None:
            raise BadSyntax(replies.BAD_SYNTAX.format(usage="TOP msg n"))
        _, msg = self.message(parts[0])
        data = await self.read_message(msg)
        await self.send_multiline(replies.TOP, _top(data, count))

    async def do_dele(self, arg: str) -> None:
        # RFC 1939 section 5 (DELE): only marked now; removed in the UPDATE state.
        number, msg = self.message(arg)
        self.deleted.add(msg.id)
        await self.send(replies.DELETED.format(number=number))

    async def do_rset(self, arg: str) -> None:
        # RFC 1939 section 5 (RSET).
        self.deleted.clear()
        await self.send(replies.RESET.format(
            count=len(self.messages), size=sum(m.size for m in self.messages)))

    async def do_noop(self, arg: str) -> None:
        # RFC 1939 section 5 (NOOP); dispatch() has refreshed the lock.
        await self.send(replies.OK)

    async def do_quit(self, arg: str) -> None:
        # RFC 1939 section 6: QUIT in TRANSACTION enters UPDATE; +OK only once committed.
        if self.state is State.TRANSACTION:
            try:
                await dbpool.run(maildrop.update, self.mailbox_id, self.id, self.deleted)
            except maildrop.MaildropLocked:
                self.log.info("update refused: lock lost to another session")
                raise Disconnect(replies.LOCK_LOST) from None
            except Exception:
                self.log.internal_error("UPDATE")
                raise Disconnect(replies.UPDATE_FAILED) from None
            self.log.info("update deleted=%d", len(self.deleted))
            self.mailbox_id = None  # update() released the lock
        self.done = True
        await self.send(replies.BYE.format(hostname=settings.MAIL_HOSTNAME))


def _lock_ttl() -> float:
    return settings.POP3_TIMEOUT + 60


def _number(arg: str) -> int | None:
    """Return a decimal number made of ASCII digits only (not '²' or '١'), else None."""
    return int(arg) if _DIGITS.fullmatch(arg) else None


def _top(data: bytes, count: int) -> bytes:
    """Return the header, the blank line and the first count body lines of a message."""
    if data.startswith(b"\r\n"):
        end = 2  # an empty header
    elif (blank := data.find(b"\r\n\r\n")) >= 0:
        end = blank + 4
    else:
        return data  # no body at all: the whole message is header
    for _ in range(count):
        if end >= len(data):
            break
        line_end = data.find(b"\r\n", end)
        end = len(data) if line_end < 0 else line_end + 2
    return data[:end]


COMMANDS: dict[str, Command] = {
    "CAPA": Command(ANY, POP3Session.do_capa),
    "STLS": Command(AUTH, POP3Session.do_stls),
    "USER": Command(AUTH, POP3Session.do_user),
    "PASS": Command(AUTH, POP3Session.do_pass, raw_arg=True),
    "AUTH": Command(AUTH, POP3Session.do_auth),
    "STAT": Command(TRANS, POP3Session.do_stat),
    "LIST": Command(TRANS, POP3Session.do_list),
    "UIDL": Command(TRANS, POP3Session.do_uidl),
    "RETR": Command(TRANS, POP3Session.do_retr),
    "TOP": Command(TRANS, POP3Session.do_top),
    "DELE": Command(TRANS, POP3Session.do_dele),
    "RSET": Command(TRANS, POP3Session.do_rset),
    "NOOP": Command(TRANS, POP3Session.do_noop),
    "QUIT": Command(ANY, POP3Session.do_quit),
}
