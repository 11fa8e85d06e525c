"""The listeners mailcore runs, and the bookkeeping for stopping them gracefully."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mailcore import dbpool, proxy, stats
from mailcore.proxy import Peer, TrustedProxies
from mailcore.store import events

log = logging.getLogger("mailcore")
STATS_FLUSH_SECONDS = 10.0
BACKLOG = 100  # asyncio's default, kept for sockets bound before the workers fork
ACCEPT_BURST = 1  # connections a worker accepts per wake-up on a shared socket
# HAProxy writes the PROXY header as it connects; a trusted proxy silent this long is broken.
PROXY_HEADER_TIMEOUT = 5.0
TLS_HANDSHAKE_TIMEOUT = 30.0

# Listening sockets a worker inherited from the supervisor, by the address a listener asks
# for: each is handed once to the listener that starts on that address (see listen_args).
_inherited: dict[tuple[str, int], socket.socket] = {}


def listen_args(host: str, port: int) -> dict[str, object]:
    """Return create_server's arguments for host:port: an inherited socket, or the address.

    An inherited socket is shared by every worker, each woken by a new connection; asyncio
    accepts up to `backlog` connections per wake-up, so with its default (100) the first
    worker to wake took every client of a burst (50 clients connecting at once all landed
    in one of two workers, the other idle). A backlog of ACCEPT_BURST makes each wake-up
    take one, and the least busy worker, back in its loop first, takes the next;
    MailServer.start then listens with BACKLOG again, the queue's length in the kernel.
    """
    sock = _inherited.pop((host, port), None)
    if sock is None:
        return {"host": host, "port": port}
    return {"sock": sock, "backlog": ACCEPT_BURST}


class Connections:
    """Open sessions across all listeners, so shutdown can end them, gently.

    A session says when it waits for its client (between commands, or in IMAP IDLE) and
    when it works on a command. On shutdown the waiting ones are ended at once, with
    their farewell (IMAP's BYE, POP3's -ERR, SMTP's 421); a command in flight gets up to
    the grace period to finish, and its session ends as soon as it waits again.
    """

    def __init__(self) -> None:
        self._open: dict[object, Callable[[], None]] = {}
        self._waiting: set[object] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self.stopping = False

    def __len__(self) -> int:
        return len(self._open)

    def add(self, key: object, abort: Callable[[], None]) -> None:
        self._open[key] = abort
        self._empty.clear()

    def discard(self, key: object) -> None:
        self._open.pop(key, None)
        self._waiting.discard(key)
        if not self._open:
            self._empty.set()

    def waiting(self, key: object) -> None:
        """The session waits for its client; once stopping, end it now."""
        if self.stopping:
            self._end(key)
        else:
            self._waiting.add(key)

    def working(self, key: object) -> None:
        """The session works on a command: a shutdown gives it the grace period."""
        self._waiting.discard(key)

    def _end(self, key: object) -> None:
        self._waiting.discard(key)
        abort = self._open.get(key)
        if abort is not None:
            abort()

    async def drain(self, grace: float) -> None:
        """End waiting sessions now; wait up to grace seconds for the rest, then abort them."""
        self.stopping = True
        if self._waiting:
            log.info("mailcore ending %d idle sessions", len(self._waiting))
        for key in list(self._waiting):
            self._end(key)
        try:
            await asyncio.wait_for(self._empty.wait(), grace)
        except TimeoutError:
            log.info("mailcore aborting %d sessions still open after %.0fs", len(self), grace)
            for abort in list(self._open.values()):
                abort()
            try:
                await asyncio.wait_for(self._empty.wait(), 2)
            except TimeoutError:
                pass


class StreamSession(Protocol):
    on_wait: Callable[[bool], None]

    async def run(self) -> None: ...


class Handover(asyncio.Protocol):
    """Each connection's first protocol: learn who the client is, then hand the connection on.

    From a trusted proxy (TRUSTED_PROXIES) the connection must open with a PROXY header,
    which names the client; on an implicit-TLS listener the TLS handshake follows it (in
    TCP mode HAProxy's send-proxy writes the header in plaintext, then passes the client's
    TLS through). Only then does the session's protocol take the transport, under the
    client's address. Reading stays paused until then and the header is read from the
    socket byte-exact, so not one byte of the session (a TLS hello) is read on its behalf.

    aiosmtpd's own PROXY support is not used: it demands the header from every peer, and
    on implicit TLS it would read it inside TLS, after the handshake.
    """

    def __init__(self, name: str, session: Callable[[Peer], asyncio.BaseProtocol],
                 connections: Connections, trusted: TrustedProxies,
                 tls: ssl.SSLContext | None) -> None:
        self.name = name  # the listener's, for the log
        self.session = session
        self.connections = connections
        self.trusted = trusted
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task | None = None
        self.peer = Peer("?", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        address = transport.get_extra_info("peername") or ("?", 0)
        self.peer = Peer(str(address[0]), int(address[1]))
        proxied = self.peer.ip in self.trusted
        if not proxied and self.tls is None:
            self._hand_over(transport, self.peer)  # the common case, at once
            return
        transport.pause_reading()
        self.connections.add(self, self._abort)
        self.task = asyncio.get_running_loop().create_task(self._prepare(transport, proxied))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None:
            self.task.cancel()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        if self.task is not None:
            self.task.cancel()

    def _hand_over(self, transport: asyncio.Transport, peer: Peer) -> None:
        protocol = self.session(peer)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)

    async def _prepare(self, transport: asyncio.Transport, proxied: bool) -> None:
        peer = self.peer
        step = "proxy header"
        try:
            if proxied:
                peer = await self._read_proxy_header(transport)
            if self.tls is None:
                self._hand_over(transport, peer)
                transport.resume_reading()
                return
            step = "tls handshake"
            protocol = self.session(peer)
            tls_transport = await asyncio.get_running_loop().start_tls(
                transport, protocol, self.tls, server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
            if tls_transport.is_closing():
                # Gone between the handshake and now (a balancer's TLS health check): the
                # session never starts, and asyncio may have told it of the loss already.
                transport.abort()
                return
            protocol.connection_made(tls_transport)
        except proxy.BadHeader as exc:
            self._refuse(transport, logging.WARNING, "proxy header refused: %s", exc)
        except TimeoutError:
            self._refuse(transport, logging.INFO, "%s timed out", step)
        except EOFError:
            self._refuse(transport, logging.INFO, "closed before the %s", step)
        except (OSError, ssl.SSLError) as exc:  # a reset, a failed handshake
            self._refuse(transport, logging.INFO, "%s failed: %s", step, type(exc).__name__)
        except asyncio.CancelledError:
            transport.abort()
        except Exception:
            log.exception("%s peer=%s internal error before the session", self.name,
                          self.peer.ip)
            transport.abort()
        finally:
            self.connections.discard(self)
            self.task = None

    async def _read_proxy_header(self, transport: asyncio.Transport) -> Peer:
        """Return the client a trusted proxy's header names (itself for UNKNOWN or LOCAL)."""
        # A duplicate of the socket to read from while the transport is paused; the
        # transport's own is wrapped, and reading it is for asyncio alone.
        sock = transport.get_extra_info("socket").dup()
        try:
            async with asyncio.timeout(PROXY_HEADER_TIMEOUT):
                header = await proxy.read_header(sock)
        finally:
            sock.close()
        if header.source is None:
            return self.peer
        return Peer(header.source[0], header.source[1], proxy=self.peer.ip)

    def _refuse(self, transport: asyncio.Transport, level: int, event: str, *args) -> None:
        log.log(level, f"%s peer=%s {event}", self.name, self.peer.ip, *args)
        transport.abort()


def accepting(name: str, session: Callable[[Peer], asyncio.BaseProtocol],
              connections: Connections, trusted: TrustedProxies, *,
              tls: ssl.SSLContext | None = None) -> Callable[[], Handover]:
    """Return create_server's protocol factory for a listener (tls: implicit TLS).

    session(peer) makes the protocol that serves a connection once its client is known.
    """
    return lambda: Handover(name, session, connections, trusted, tls)


async def start_stream_listener(
    name: str, host: str, port: int, connections: Connections, *,
    session: Callable[[asyncio.StreamReader, asyncio.StreamWriter, Peer], StreamSession],
    farewell: bytes, tls: ssl.SSLContext, implicit_tls: bool, limit: int,
    trusted: TrustedProxies,
) -> asyncio.Server:
    """Serve a line protocol: one session per connection, registered for shutdown.

    On shutdown a session still open after the grace period is told farewell and ended.
    """
    loop = asyncio.get_running_loop()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    peer: Peer) -> None:
        current = session(reader, writer, peer)
        task = asyncio.current_task()

        def abort() -> None:
            if not writer.is_closing():
                writer.write(farewell)
            if task is not None:
                task.cancel()

        connections.add(current, abort)
        current.on_wait = lambda waiting: (connections.waiting(current) if waiting
                                           else connections.working(current))
        try:
            await current.run()
        except asyncio.CancelledError:
            writer.close()
        finally:
            connections.discard(current)

    def streams(peer: Peer) -> asyncio.StreamReaderProtocol:
        # What asyncio.start_server makes for each connection, with the client's address.
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(
            reader, lambda reader, writer: serve(reader, writer, peer), loop=loop)

    return await loop.create_server(
        accepting(name, streams, connections, trusted, tls=tls if implicit_tls else None),
        **listen_args(host, port))


@dataclass
class ListenerSpec:
    name: str
    port: int
    start: Callable[[str, int, Connections], Awaitable[asyncio.Server]]


@dataclass
class Bound:
    name: str
    server: asyncio.Server

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]


def bind(specs: list[ListenerSpec], host: str) -> dict[str, socket.socket]:
    """Bind and listen on every configured listener's address; return the sockets by name.

    The supervisor does this once, before forking, so that every worker serves the same
    sockets (a port asked as 0, or negative, is chosen once for them all).
    """
    infos = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, _, proto, _, address = infos[0]
    if len({info[4][0] for info in infos}) > 1:
        log.warning("mailcore binds only %s of the addresses %r names", address[0], host)
    sockets: dict[str, socket.socket] = {}
    for spec in specs:
        if not spec.port:
            continue
        # The protocol named, as asyncio does: its transports set TCP_NODELAY only on
        # sockets whose proto says TCP, and accepted sockets take the listener's.
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
        try:
            # As asyncio binds: reuse a port in TIME_WAIT, and IPv6 sockets only for IPv6.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], max(spec.port, 0), *address[2:]))
            sock.listen(BACKLOG)
        except BaseException:
            sock.close()
            for bound in sockets.values():
                bound.close()
            raise
        sockets[spec.name] = sock
    return sockets


def report_ports(path: str, ports: dict[str, int]) -> None:
    """Write {listener name: port} as JSON to path (MAILCORE_PORTS_FILE), whole or not at all.

    Written once every listener is bound, it is how whoever started mailcore learns the
    ports asked as "auto" and that mailcore listens: a reader never sees half a file, as
    it appears by rename. A file left by an earlier run is replaced, never removed: the
    starter removes it before starting mailcore, then waits for it to appear.
    """
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(ports, sort_keys=True) + "\n")
    os.replace(temporary, target)


class MailServer:
    """Start every configured listener; stop accepting, drain sessions, and exit on stop().

    A worker process passes the sockets the supervisor bound (see bind), by listener
    name; the listeners then serve those instead of binding their own.
    """

    def __init__(self, specs: list[ListenerSpec], host: str,
                 sockets: dict[str, socket.socket] | None = None) -> None:
        self.specs = [s for s in specs if s.port]
        self.host = host
        self.sockets = sockets or {}
        self.connections = Connections()
        self.bound: list[Bound] = []
        self.flusher: asyncio.Task | None = None

    async def _flush_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_FLUSH_SECONDS)
            try:
                await dbpool.run(stats.tally.flush)
            except Exception:
                log.warning("could not write traffic counters", exc_info=True)

    async def start(self) -> list[Bound]:
        for spec in self.specs:
            port = 0 if spec.port < 0 else spec.port  # a negative port asks for any free one
            sock = self.sockets.get(spec.name)
            if sock is not None:
                port = sock.getsockname()[1]
                _inherited[(self.host, port)] = sock
            server = await spec.start(self.host, port, self.connections)
            if sock is not None:
                sock.listen(BACKLOG)  # create_server listened with ACCEPT_BURST (listen_args)
            self.bound.append(Bound(spec.name, server))
            log.info("mailcore listening name=%s address=%s port=%d",
                     spec.name, self.host, self.bound[-1].port)
        self.flusher = asyncio.get_running_loop().create_task(self._flush_stats())
        return self.bound

    def port(self, name: str) -> int:
        return next(b.port for b in self.bound if b.name == name)

    def ports(self) -> dict[str, int]:
        """Return the port each started listener is bound to, by listener name."""
        return {b.name: b.port for b in self.bound}

    async def stop(self, grace: float) -> None:
        for bound in self.bound:
            bound.server.close()
        await self.connections.drain(grace)
        for bound in self.bound:
            await bound.server.wait_closed()
        if self.flusher is not None:
            self.flusher.cancel()
        await events.hub.close()
        await dbpool.run(stats.tally.flush)
        log.info("mailcore stopped")
