"""What every protocol session shares: ids, the one-line event log, and failure exceptions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import Callable, Iterator

from mailcore import deflate
from mailcore.proxy import Peer

log = logging.getLogger("mailcore.session")


class ProtocolError(Exception):
    """Base of the protocol-neutral failures a handler raises; each protocol maps them."""

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.text = text


class BadSyntax(ProtocolError):
    """The command could not be parsed."""


class Refused(ProtocolError):
    """The command was understood and refused for good."""


class TemporaryFailure(ProtocolError):
    """The command may succeed if tried again later."""


class Disconnect(ProtocolError):
    """Say this text, then close the connection."""


def new_session_id() -> str:
    return secrets.token_hex(6)


class SessionLog:
    """Log one line per session event, each carrying the protocol, session id and peer."""

    def __init__(self, protocol: str, session_id: str, peer: str) -> None:
        self.prefix = f"{protocol} session={session_id} peer={peer}"

    def connected(self, peer: Peer) -> None:
        """Log the session's start, naming the trusted proxy that relayed it, if one did."""
        if peer.proxy:
            self.info("connect proxy=%s", peer.proxy)
        else:
            self.info("connect")

    def info(self, event: str, *args) -> None:
        log.info(f"{self.prefix} {event}", *args)

    def warning(self, event: str, *args) -> None:
        log.warning(f"{self.prefix} {event}", *args)

    def internal_error(self, event: str) -> None:
        """Log an unexpected exception with its traceback (the peer only sees the id)."""
        log.error(f"{self.prefix} internal error in {event}", exc_info=True)


class StreamSession:
    """What a line-protocol session (POP3, IMAP) knows of its connection from the start."""

    protocol = ""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 tls: ssl.SSLContext | None, secure: bool, peer: Peer | None = None) -> None:
        self.reader, self.writer = reader, writer
        self.tls, self.secure = tls, secure
        self.id = new_session_id()
        if peer is None:  # the socket's, with no listener's Handover in front
            address = writer.get_extra_info("peername") or ("?", 0)
            peer = Peer(str(address[0]), int(address[1]))
        # The client's address: the socket's, or the one a trusted proxy's header named.
        self.peer = peer
        self.peer_ip = peer.ip
        name = f"{self.protocol}s" if secure else self.protocol
        self.log = SessionLog(name, self.id, self.peer_ip)
        # Told when the session waits for its client and when it works again; the
        # listener sets it, so that a shutdown ends a waiting session at once.
        self.on_wait: Callable[[bool], None] = lambda waiting: None
        self.inflating: asyncio.Task | None = None  # the pump once compression is on

    @contextlib.contextmanager
    def waiting_for_client(self) -> Iterator[None]:
        """Mark the wait for the client's next command (or IMAP's DONE): nothing in flight.

        On shutdown the listener may end the session here: its farewell is written and the
        task cancelled, which lands at the wait.
        """
        # A command already buffered is as good as in flight: it runs before any shutdown.
        waiting = not self.reader._buffer  # noqa: SLF001 - see upgrade_to_tls
        if waiting:
            self.on_wait(True)
        try:
            yield
        finally:
            if waiting:
                self.on_wait(False)

    @property
    def compressed(self) -> bool:
        return self.inflating is not None

    def start_compression(self) -> None:
        """Compress the rest of the connection both ways with raw DEFLATE (RFC 4978).

        Call it right after writing (and draining) the reply that announces it.
        """
        limit = self.reader._limit  # noqa: SLF001 - the listener's line limit, kept as is
        self.reader, self.writer, self.inflating = deflate.compressed(
            self.reader, self.writer, limit)
        self.log.info("compression started")

    async def drain_within(self, seconds: float) -> None:
        """Wait, at most seconds, for the peer to take what was written.

        A timeout scope rather than wait_for: no task per response, which a busy server
        notices. And none at all when the socket took everything written (most replies):
        drain() would return at once, and arming and cancelling a timer per reply showed
        as some 5% of an IMAP server's CPU. A compressing writer still drains: its drain
        flushes the compressor.
        """
        writer = self.writer
        if type(writer) is asyncio.StreamWriter and not writer.transport.is_closing() \
                and not writer.transport.get_write_buffer_size():
            return
        async with asyncio.timeout(seconds):
            await writer.drain()

    async def read_line_within(self, seconds: float) -> bytes | None:
        """read_line(), at most seconds long; IncompleteReadError when the peer goes."""
        async with asyncio.timeout(seconds):
            return await read_line(self.reader)

    async def close_connection(self) -> None:
        """Log the end and close, without waiting long for a peer that reads nothing."""
        self.log.info("disconnect")
        if self.inflating is not None:
            self.inflating.cancel()
        self.writer.close()
        try:
            # Closing waits for unsent data; a peer that reads nothing would keep us here.
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except TimeoutError:
            self.writer.transport.abort()
        except (ConnectionError, ssl.SSLError):
            pass

    async def upgrade_to_tls(self, ok: bytes, pipelined: str, handshake_timeout: float) -> None:
        """Say ok, then switch the connection to TLS (RFC 2595 section 3.1, RFC 3207).

        Anything the client pipelined after the command would be read as if it came over
        TLS (the STARTTLS command injection of CVE-2011-0411): Disconnect with pipelined
        instead. Between that check and start_tls() nothing may yield to the event loop,
        or bytes read meanwhile land in the plaintext buffer (an injected command, or the
        client's TLS hello lost); so ok is written without a timed drain: every earlier
        reply was drained below the low-water mark, so these few bytes cannot pause
        writing, and start_tls()'s own drain() returns without yielding.
        """
        assert self.tls is not None
        if self.reader._buffer:  # noqa: SLF001 - asyncio exposes no other way to peek
            raise Disconnect(pipelined)
        self.writer.write(ok)
        await self.writer.start_tls(self.tls, ssl_handshake_timeout=handshake_timeout)
        self.secure = True
        self.log.info("tls established")


async def read_line(reader: asyncio.StreamReader) -> bytes | None:
    """Return one line with its end, or None after discarding a line beyond the buffer.

    The caller bounds the wait with its timeout; an overlong line is read to its end so
    the next command starts clean.
    """
    try:
        return await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    while True:
        await reader.readexactly(consumed)
        try:
            await reader.readuntil(b"\n")
            return None
        except asyncio.LimitOverrunError as more:
            consumed = more.consumed
