"""One IMAP session (RFC 3501, RFC 9051): reading commands, the state table, and login.

The state machine is data: COMMANDS maps each verb to the states it is allowed in and
its handler. Handlers here cover the any-state and not-authenticated commands; folder
commands live in mailcore.imap.folder_commands, selected-state ones in mailcore.imap.selection,
FETCH in mailcore.imap.fetch, SEARCH in mailcore.imap.search_command, SORT and THREAD in
mailcore.imap.sort_command, COMPRESS in mailcore.imap.compression, CANCELUPDATE in
mailcore.imap.updating, NOTIFY in mailcore.imap.notify; they see the session
as mailcore.imap.context.Session, so they need not import this module. A handler returns
the text of its tagged OK, or raises one of mailcore.sessions' exceptions, mapped to
NO, BAD or BYE in dispatch() alone.
"""

from __future__ import annotations

import asyncio
import enum
import re
import ssl
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn

from django.conf import settings

from mailcore import dbpool, logins, sasl
from mailcore.directory import LoginRefused, plaintext_allowed
from mailcore.imap import (
    compression,
    encode,
    fetch,
    folder_commands,
    listening,
    notify,
    replies,
    search_command,
    selection,
    sort_command,
    updating,
)
from mailcore.imap.parser import (
    Authenticate,
    BadCharset,
    Command,
    CommandSyntaxError,
    Enable,
    Id,
    Login,
    Unknown,
    find_literal,
    parse_command,
)
from mailcore.imap.view import View
from mailcore.principal import Principal
from mailcore.proxy import Peer
from mailcore.sessions import (
    BadSyntax,
    Disconnect,
    ProtocolError,
    Refused,
    StreamSession,
    TemporaryFailure,
    read_line,
)
from mailcore.store import events, messages

MAX_AUTH_FAILURES = 3
MAX_ERRORS = 20
READ_CHUNK = 64 * 1024
_SAVE_OPTION = re.compile(rb"RETURN *\([^)]*\bSAVE\b", re.I)
_TAG_AND_VERB = re.compile(rb"([^\x00-\x20\x7f-\xff(){%*\"\\+]+) +(?:UID +)?([A-Za-z]+)")


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"


NOT_AUTHENTICATED = frozenset({State.NOT_AUTHENTICATED})
AUTHENTICATED_ONLY = frozenset({State.AUTHENTICATED})
AUTHENTICATED = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})
ANY = frozenset(State)

# A handler returns its tagged OK text, or None when it has answered itself (STARTTLS).
Handler = Callable[["IMAPSession", Command], Awaitable[str | None]]


@dataclass(frozen=True)
class Verb:
    states: frozenset[State]
    handler: Handler
    # RFC 9051 section 7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH by
    # message number (their UID forms may be followed by one).
    numbers_stable: bool = False


class LiteralTooBig(ProtocolError):
    """A literal above its limit: refused before reading it (or discarded after)."""

    def __init__(self, tag: str | None, text: str, status: str) -> None:
        super().__init__(text)
        self.tag, self.status = tag, status


class IMAPSession(StreamSession):
    """Serve one connection until LOGOUT, a timeout, or the peer going away."""

    protocol = "imap"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 tls: ssl.SSLContext | None, secure: bool, peer: Peer | None = None) -> None:
        super().__init__(reader, writer, tls, secure, peer)
        self.state = State.NOT_AUTHENTICATED
        self.user = ""
        self.principal: Principal | None = None  # plain values from login, never a model
        self.mailbox_id: int | None = None
        self.selected: View | None = None
        self.changes: events.Watch | None = None  # told by the change hub
        self.must_sync = False  # this command changed the selected folder itself
        self.condstore = self.qresync = self.rev2 = False
        self.utf8_accept = False  # ENABLE UTF8=ACCEPT (RFC 6855)
        self.updating: updating.Contexts | None = None  # RETURN (UPDATE) searches, RFC 5267
        self.notifier: notify.Notifier | None = None  # NOTIFY SET (RFC 5465)
        self.auth_failures = 0
        self.errors = 0
        self.done = False

    # Output -------------------------------------------------------------------------------

    async def send(self, *lines: bytes) -> None:
        """Write response lines, waiting (boundedly) for a slow reader to take them."""
        for line in lines:
            self.writer.write(line)
        await self.drain()

    async def drain(self) -> None:
        await self.drain_within(settings.IMAP_WRITE_TIMEOUT)

    def write(self, line: bytes) -> None:
        """Queue a response line; the caller drains (for long runs of responses)."""
        self.writer.write(line)

    @property
    def utf8(self) -> bool:
        """Mailbox names and strings in UTF-8 (IMAP4rev2 enabled, RFC 9051 section 5.1;
        UTF8=ACCEPT enabled, RFC 6855 section 3)."""
        return self.rev2 or self.utf8_accept

    # Input --------------------------------------------------------------------------------

    def timeout(self) -> float:
        if self.state is State.NOT_AUTHENTICATED:
            return settings.IMAP_PREAUTH_TIMEOUT
        return settings.IMAP_TIMEOUT

    async def read_line(self, timeout: float | None = None) -> bytes | None:
        """Return one line with its CRLF, or None when the peer has gone."""
        try:
            line = await self.read_line_within(timeout or self.timeout())
        except asyncio.IncompleteReadError:
            return None
        if line is None:
            raise BadSyntax(replies.LINE_TOO_LONG)
        return line

    async def read_exactly(self, size: int, keep: bool = True) -> bytes:
        """Read a literal in chunks, each within the timeout (slow is fine, stalled is not)."""
        data = bytearray()
        while size:
            async with asyncio.timeout(self.timeout()):
                chunk = await self.reader.read(min(size, READ_CHUNK))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(data), size)
            size -= len(chunk)
            if keep:
                data += chunk
        return bytes(data)

    async def read_command(self) -> bytes | None:
        """Return one whole command (its lines and literals as received), None at EOF.

        Each literal is checked against its limit before any of it is read (RFC 7888
        section 4): a synchronizing one is refused instead of sending "+"; a
        non-synchronizing one, already on its way, is read and discarded when it is no
        bigger than MESSAGE_SIZE_LIMIT, and otherwise the connection is closed.
        """
        if self.updating is None and self.notifier is None:
            with self.waiting_for_client():
                line = await self.read_line()
        else:  # updates go out until the command comes (mailcore.imap.listening)
            line = await listening.first_line(self)
        if line is None:
            return None
        data = bytearray(line)
        while (marker := find_literal(line)) is not None:
            tag, verb = _tag_and_verb(data)
            appending = verb == b"APPEND" and self.state in COMMANDS["APPEND"].states
            # Only an APPEND that may run gets message-sized literals: not one before login.
            limit = settings.MESSAGE_SIZE_LIMIT if appending else settings.IMAP_MAX_LITERAL
            too_big = None
            if marker.size > limit:
                too_big = (replies.MESSAGE_TOO_BIG.format(limit=limit) if appending
                           else replies.LITERAL_TOO_BIG)
            elif len(data) + marker.size > settings.IMAP_MAX_COMMAND:
                too_big = replies.COMMAND_TOO_BIG
            if too_big is not None:
                status = "NO" if appending else "BAD"
                if marker.non_synchronizing:
                    await self._discard_rest(marker.size)
                raise LiteralTooBig(tag, too_big, status)
            if not marker.non_synchronizing:
                await self.send(encode.continuation(replies.LITERAL_READY))
            data += await self.read_exactly(marker.size)
            line = await self.read_line()
            if line is None:
                return None
            data += line
        return bytes(data)

    async def _discard_rest(self, size: int) -> None:
        """Read and drop a refused non-synchronizing literal and the rest of its command."""
        while True:
            if size > settings.MESSAGE_SIZE_LIMIT:
                raise Disconnect(replies.LITERAL_TOO_BIG_CLOSING)
            await self.read_exactly(size, keep=False)
            line = await self.read_line()
            if line is None:
                raise asyncio.IncompleteReadError(b"", None)
            marker = find_literal(line)
            if marker is None or not marker.non_synchronizing:
                return  # a synchronizing literal waits for a "+" it will not get
            size = marker.size

    # The loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        self.log.connected(self.peer)
        try:
            await self.send(encode.untagged_status("OK", replies.GREETING.format(
                capabilities=" ".join(self.capabilities()))))
            while not self.done:
                try:
                    try:
                        data = await self.read_command()
                    except LiteralTooBig as exc:
                        await self.send(_reply(exc.tag, exc.status, exc.text))
                        continue
                    if data is None:
                        self.log.info("peer closed connection")
                        return
                    await self.dispatch(data)
                except Disconnect as exc:
                    await self.send(encode.untagged_status("BYE", exc.text))
                    return
                except BadSyntax as exc:  # a line too long, before any tag was read
                    await self.send(encode.untagged_status("BAD", exc.text))
                    self.count_error()
        except TimeoutError:
            self.log.info("timeout")
            await self._try_send(encode.untagged_status("BYE", replies.TIMEOUT))
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            self.log.info("connection lost: %s", type(exc).__name__)
        except Exception:
            self.log.internal_error("session")
            await self._try_send(encode.untagged_status(
                "BYE", replies.TEMPORARY_FAILURE.format(session=self.id)))
        finally:
            await self.close()

    def count_error(self) -> None:
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            raise Disconnect(replies.TOO_MANY_ERRORS)

    async def _try_send(self, line: bytes) -> None:
        try:
            await self.send(line)
        except (ConnectionError, ssl.SSLError, RuntimeError, TimeoutError):
            pass

    async def dispatch(self, data: bytes) -> None:
        """Parse, check the state, run the handler, and answer with one tagged line."""
        try:
            command = parse_command(data, utf8=self.utf8)
        except CommandSyntaxError as exc:
            self._forget_saved_search(exc.verb, data)
            await self.send(_reply(exc.tag, "BAD", replies.BAD_SYNTAX.format(detail=exc.text)))
            self.count_error()
            return
        except BadCharset as exc:
            self._forget_saved_search(exc.verb, data)
            await self.send(_reply(exc.tag, "NO", exc.text))
            return
        verb = COMMANDS.get(command.name)
        status, text = "OK", None
        try:
            if verb is None or isinstance(command.args, Unknown):
                raise BadSyntax(replies.UNKNOWN_COMMAND)
            if self.state not in verb.states:
                raise BadSyntax(replies.WRONG_STATE.format(verb=command.verb))
            text = await verb.handler(self, command)
            if text is None:
                return
        except Disconnect:
            raise
        except BadSyntax as exc:
            status, text = "BAD", exc.text
        except (Refused, TemporaryFailure) as exc:
            status, text = "NO", exc.text
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            raise
        except Exception:
            self.log.internal_error(command.verb)
            status, text = "NO", replies.TEMPORARY_FAILURE.format(session=self.id)
        if self.state is State.SELECTED and not self.done:
            stable = verb is not None and verb.numbers_stable and not command.uid
            await self.sync(expunge_allowed=not stable)
        await self.send(encode.tagged(command.tag, status, text))
        if status == "BAD":
            self.count_error()

    def _forget_saved_search(self, verb: str | None, data: bytes) -> None:
        # RFC 5182 section 2.1: a SEARCH RETURN (SAVE) that fails, even unparsed, empties "$".
        if self.selected is not None and verb in ("SEARCH", "UID SEARCH", "SORT", "UID SORT") \
                and _SAVE_OPTION.search(data):
            self.selected.saved = array("I")

    async def close(self) -> None:
        notify.stop(self)
        if self.changes is not None and self.mailbox_id is not None:
            events.hub.unwatch(self.mailbox_id, self.changes)
            self.changes = None
        await self.close_connection()

    # Selected-folder bookkeeping ----------------------------------------------------------

    async def sync(self, expunge_allowed: bool = True) -> None:
        """Send what changed in the selected folder since we last looked (if anything did)."""
        view = self.selected
        if view is None:
            return
        changes = self.changes
        if changes is not None and changes.is_set() and not self.must_sync \
                and changes.covered(view.folder_id, view.modseq):
            changes.clear()  # only changes this session made itself, and already knows
        if not (self.must_sync or (changes is not None and changes.is_set())):
            if self.updating is not None and self.updating.stale(view):
                await self.updating.announce(self, lambda: (
                    view.announce_expunges(self.qresync) if expunge_allowed else []))
            elif expunge_allowed and view.pending:
                await self.send(*view.announce_expunges(self.qresync))
            return
        self.must_sync = False
        if changes is not None:
            changes.clear()  # before reading, so a change made meanwhile wakes us again
        found = await dbpool.run(messages.sync_state, view.folder_id, view.modseq)
        if found is None:
            raise Disconnect(replies.FOLDER_DELETED)
        arrived = [m.uid for m in found[1] if m.uid > view.max_uid]
        if arrived and view.shows_recent:
            # RFC 3501 section 2.3.2: the first session told of a new message has it \Recent.
            first = await dbpool.run(messages.claim_recent, view.folder_id, arrived[-1] + 1,
                                     not view.read_only)
            view.add_recent(max(first, arrived[0]), arrived[-1] + 1)
        if self.updating is not None:
            # Updating searches (RFC 5267) tell what left them before, and joined after.
            await self.updating.announce(self, lambda: view.updates(
                *found, expunge_allowed=expunge_allowed, condstore=self.condstore,
                qresync=self.qresync))
            return
        lines = view.updates(*found, expunge_allowed=expunge_allowed,
                             condstore=self.condstore, qresync=self.qresync)
        if lines:
            await self.send(*lines)

    def enable_condstore(self) -> None:
        """Turn CONDSTORE on, as any command using it does (RFC 7162 section 3.1).

        The first such command while a folder is selected is told the folder's
        HIGHESTMODSEQ first (section 3.1: the client may not have seen it at SELECT).
        """
        if not self.condstore and self.selected is not None:
            self.write(encode.untagged_status("OK", replies.HIGHESTMODSEQ.format(
                value=self.selected.modseq)))
        self.condstore = True

    def select(self, view: View) -> None:
        self.selected = view
        self.state = State.SELECTED
        self.must_sync = False
        self.updating = None  # RFC 5267 section 4.3: updates end with the selection

    def deselect(self) -> None:
        self.selected = None
        self.state = State.AUTHENTICATED
        self.updating = None

    # Capabilities -------------------------------------------------------------------------

    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.tls is not None and not self.secure:
                caps.append("STARTTLS")
            if plaintext_allowed(self.secure, self.peer_ip):
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
            return caps
        return caps + [
            "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "SPECIAL-USE",
            "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "QUOTA",
            "QUOTA=RES-STORAGE", "ESEARCH", "SEARCHRES", "WITHIN", "CONDSTORE", "QRESYNC",
            "MULTIAPPEND", "BINARY", "STATUS=SIZE", f"APPENDLIMIT={settings.MESSAGE_SIZE_LIMIT}",
            *sort_command.CAPABILITIES, "UTF8=ACCEPT", "CATENATE",
            compression.CAPABILITY, "NOTIFY",
        ]

    # Any state ----------------------------------------------------------------------------

    async def do_capability(self, command: Command) -> str:
        # RFC 9051 section 6.1.1.
        await self.send(encode.untagged("CAPABILITY", " ".join(self.capabilities())))
        return replies.COMPLETED.format(verb=command.verb)

    async def do_noop(self, command: Command) -> str:
        # RFC 9051 section 6.1.2: dispatch() sends the folder's updates after this.
        return replies.COMPLETED.format(verb=command.verb)

    async def do_logout(self, command: Command) -> str:
        # RFC 9051 section 6.1.3.
        self.done = True
        self.log.info("logout")
        await self.send(encode.untagged_status("BYE", replies.LOGOUT))
        return replies.COMPLETED.format(verb=command.verb)

    async def do_id(self, command: Command) -> str:
        # RFC 2971 section 3.1.
        args: Id = command.args
        if args.params:
            fields = {k.lower(): v for k, v in args.params}
            self.log.info("client id name=%s version=%s",
                          _printable(fields.get("name")), _printable(fields.get("version")))
        await self.send(encode.untagged("ID", b'("name" "mailcore" "vendor" "mailhost")'))
        return replies.COMPLETED.format(verb=command.verb)

    # Not authenticated --------------------------------------------------------------------

    async def do_starttls(self, command: Command) -> None:
        # RFC 9051 section 6.2.1, RFC 2595 section 3.1.
        if self.secure:
            raise BadSyntax(replies.ALREADY_TLS)
        if self.tls is None:
            raise Refused(replies.TLS_UNAVAILABLE)
        await self.upgrade_to_tls(encode.tagged(command.tag, "OK", replies.STARTTLS_OK),
                                  replies.PIPELINED_STARTTLS, settings.IMAP_PREAUTH_TIMEOUT)

    async def do_login(self, command: Command) -> str:
        # RFC 9051 section 6.2.3.
        args: Login = command.args
        self.check_plaintext()
        return await self.login(args.username, args.password)

    async def do_authenticate(self, command: Command) -> str:
        # RFC 9051 section 6.2.2, SASL-IR (RFC 4959), PLAIN (RFC 4616).
        args: Authenticate = command.args
        if args.mechanism != "PLAIN":
            raise Refused(replies.UNSUPPORTED_MECHANISM)
        self.check_plaintext()
        response = args.initial_response
        if response is None:
            await self.send(b"+ \r\n")
            line = await self.read_line()
            if line is None:
                raise ConnectionResetError
            response = line.decode("ascii", "replace").strip()
        try:
            authzid, user, password = sasl.decode_plain(sasl.decode_response(response))
        except sasl.Cancelled:
            raise BadSyntax(replies.AUTH_CANCELLED) from None
        except sasl.SASLError:
            raise BadSyntax(replies.BAD_SASL) from None
        # RFC 4616 section 2: acting as someone else needs a right nobody here has.
        if authzid and authzid.lower() != user.lower():
            self.log.info("login refused: authzid differs user=%s", _printable(user))
            await self.login_failed(user, LoginRefused())
        return await self.login(user, password)

    def check_plaintext(self) -> None:
        if not plaintext_allowed(self.secure, self.peer_ip):
            raise Refused(replies.PLAINTEXT_DISALLOWED)

    async def login(self, user: str, password: str) -> str:
        """Authenticate, or raise the refusal to send after the failure delay."""
        try:
            principal = await logins.log_in(user, password, self.peer_ip)
        except LoginRefused as exc:
            await self.login_failed(user, exc)
        self.principal = principal
        self.mailbox_id = principal.mailbox_id
        self.user = principal.address
        self.state = State.AUTHENTICATED
        self.changes = events.hub.watch(principal.mailbox_id)
        self.log.info("login user=%s", principal.address)
        return replies.LOGGED_IN.format(capabilities=" ".join(self.capabilities()))

    async def login_failed(self, user: str, refused: LoginRefused) -> NoReturn:
        self.auth_failures += 1
        self.log.info("login failed user=%s rate_limited=%s", _printable(user),
                      refused.rate_limited)
        # The throttle's delay, growing with failures; only this session waits.
        await asyncio.sleep(refused.delay)
        if self.auth_failures >= MAX_AUTH_FAILURES:
            raise Disconnect(replies.TOO_MANY_FAILURES)
        raise Refused(replies.AUTH_RATE_LIMITED if refused.rate_limited
                      else replies.AUTH_FAILED)

    # Authenticated ------------------------------------------------------------------------

    async def do_enable(self, command: Command) -> str:
        # RFC 5161 section 3.1; RFC 7162 section 3.2.3 (QRESYNC implies CONDSTORE);
        # RFC 9051 section 6.3.1 (IMAP4rev2); RFC 6855 section 3 (UTF8=ACCEPT).
        args: Enable = command.args
        enabled = []
        for name in args.capabilities:
            if name == "CONDSTORE" and not self.condstore:
                self.condstore = True
                enabled.append(name)
            elif name == "QRESYNC" and not self.qresync:
                self.qresync = self.condstore = True
                enabled.append(name)
            elif name == "IMAP4REV2" and not self.rev2:
                self.rev2 = True
                enabled.append("IMAP4rev2")
            elif name == "UTF8=ACCEPT" and not self.utf8_accept:
                self.utf8_accept = True
                enabled.append("UTF8=ACCEPT")
        if enabled:
            self.log.info("enabled %s", " ".join(enabled))
        await self.send(encode.untagged("ENABLED", *enabled))
        return replies.COMPLETED.format(verb=command.verb)

    async def do_namespace(self, command: Command) -> str:
        # RFC 2342 section 5: one personal namespace, no other users' or shared ones.
        await self.send(encode.untagged("NAMESPACE", b'(("" "/")) NIL NIL'))
        return replies.COMPLETED.format(verb=command.verb)

    async def do_idle(self, command: Command) -> str:
        # RFC 2177: updates as they happen until the client says DONE.
        await self.send(encode.continuation(replies.IDLING))
        self.log.info("idle")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.IMAP_IDLE_TIMEOUT
        reading = asyncio.ensure_future(read_line(self.reader))
        try:
            while True:
                if self.notifier is None:
                    await self.sync()
                else:  # RFC 5465 section 4: NOTIFY's events, as between commands
                    await notify.deliver(self, idling=True)
                waiters = {reading}
                if self.changes is not None and self.state is State.SELECTED:
                    waiters.add(asyncio.ensure_future(self.changes.wait()))
                if self.notifier is not None:
                    waiters.add(asyncio.ensure_future(self.notifier.watch.wait()))
                try:
                    with self.waiting_for_client():  # a shutdown says BYE here at once
                        await asyncio.wait(waiters, timeout=deadline - loop.time(),
                                           return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiting in waiters - {reading}:
                        waiting.cancel()
                if reading.done():
                    break
                if loop.time() >= deadline:
                    raise TimeoutError
        finally:
            if not reading.done():
                reading.cancel()
        line = reading.result()
        if line is None:
            raise BadSyntax(replies.LINE_TOO_LONG)
        if line.strip().upper() != b"DONE":
            raise BadSyntax(replies.IDLE_EXPECTED_DONE)
        return replies.COMPLETED.format(verb=command.verb)


def _reply(tag: str | None, status: str, text: str) -> bytes:
    if tag is None:
        return encode.untagged_status(status, text)
    return encode.tagged(tag, status, text)


def _tag_and_verb(data: bytes | bytearray) -> tuple[str | None, bytes | None]:
    """Return the tag and the command name of a command being read, as far as known."""
    match = _TAG_AND_VERB.match(data)
    if match is None:
        return None, None
    return match.group(1).decode("ascii"), match.group(2).upper()


def _printable(value: str | None) -> str:
    """Return a client-supplied value safe for a one-line log entry."""
    if value is None:
        return "-"
    return "".join(c if c.isprintable() and c != " " else "?" for c in value[:64])


COMMANDS: dict[str, Verb] = {
    # Any state (RFC 9051 section 6.1).
    "CAPABILITY": Verb(ANY, IMAPSession.do_capability),
    "NOOP": Verb(ANY, IMAPSession.do_noop),
    "LOGOUT": Verb(ANY, IMAPSession.do_logout),
    "ID": Verb(ANY, IMAPSession.do_id),
    # Not authenticated (section 6.2).
    "STARTTLS": Verb(NOT_AUTHENTICATED, IMAPSession.do_starttls),
    "AUTHENTICATE": Verb(NOT_AUTHENTICATED, IMAPSession.do_authenticate),
    "LOGIN": Verb(NOT_AUTHENTICATED, IMAPSession.do_login),
    # Authenticated (section 6.3), also allowed when a folder is selected.
    "ENABLE": Verb(AUTHENTICATED_ONLY, IMAPSession.do_enable),
    "SELECT": Verb(AUTHENTICATED, selection.do_select),
    "EXAMINE": Verb(AUTHENTICATED, selection.do_select),
    "CREATE": Verb(AUTHENTICATED, folder_commands.do_create),
    "DELETE": Verb(AUTHENTICATED, folder_commands.do_delete),
    "RENAME": Verb(AUTHENTICATED, folder_commands.do_rename),
    "SUBSCRIBE": Verb(AUTHENTICATED, folder_commands.do_subscribe),
    "UNSUBSCRIBE": Verb(AUTHENTICATED, folder_commands.do_subscribe),
    "LIST": Verb(AUTHENTICATED, folder_commands.do_list),
    "LSUB": Verb(AUTHENTICATED, folder_commands.do_list),
    "NAMESPACE": Verb(AUTHENTICATED, IMAPSession.do_namespace),
    "STATUS": Verb(AUTHENTICATED, folder_commands.do_status),
    "APPEND": Verb(AUTHENTICATED, folder_commands.do_append),
    "IDLE": Verb(AUTHENTICATED, IMAPSession.do_idle),
    "GETQUOTA": Verb(AUTHENTICATED, folder_commands.do_getquota),
    "GETQUOTAROOT": Verb(AUTHENTICATED, folder_commands.do_getquotaroot),
    "SETQUOTA": Verb(AUTHENTICATED, folder_commands.do_setquota),
    # Selected (section 6.4).
    "CHECK": Verb(SELECTED, IMAPSession.do_noop),
    "CLOSE": Verb(SELECTED, selection.do_close),
    "UNSELECT": Verb(SELECTED, selection.do_unselect),
    "EXPUNGE": Verb(SELECTED, selection.do_expunge),
    "SEARCH": Verb(SELECTED, search_command.do_search, numbers_stable=True),
    "FETCH": Verb(SELECTED, fetch.do_fetch, numbers_stable=True),
    "STORE": Verb(SELECTED, selection.do_store, numbers_stable=True),
    "COPY": Verb(SELECTED, selection.do_copy),
    "MOVE": Verb(SELECTED, selection.do_move),
    "SORT": Verb(SELECTED, sort_command.do_sort, numbers_stable=True),  # RFC 5256
    "THREAD": Verb(SELECTED, sort_command.do_thread, numbers_stable=True),
    "COMPRESS": Verb(AUTHENTICATED, compression.do_compress),  # RFC 4978
    "CANCELUPDATE": Verb(SELECTED, updating.do_cancelupdate),  # RFC 5267 section 4.3.5
    "NOTIFY": Verb(AUTHENTICATED, notify.do_notify),  # RFC 5465
}
