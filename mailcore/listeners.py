"""The listeners mailcore runs, and the bookkeeping for stopping them gracefully."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("mailcore")
STATS_FLUSH_SECONDS = 10.0
BACKLOG = 100  # asyncio's default, kept for sockets bound before the workers fork

# Listening sockets a worker inherited from the supervisor, by the address a listener asks
# for: each is handed once to the listener that starts on that address (see listen_args).
_inherited: dict[tuple[str, int], socket.socket] = {}


def listen_args(host: str, port: int) -> dict[str, object]:
    """Return create_server's arguments for host:port: an inherited socket, or the address."""
    sock = _inherited.pop((host, port), None)
    return {"host": host, "port": port} if sock is None else {"sock": sock}


class Connections:
    """Open sessions across all listeners, so shutdown can wait for them, then end them."""

    def __init__(self) -> None:
        self._open: dict[object, Callable[[], None]] = {}
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, key: object, abort: Callable[[], None]) -> None:
        self._open[key] = abort
        self._empty.clear()

    def discard(self, key: object) -> None:
        self._open.pop(key, None)
        if not self._open:
            self._empty.set()

    async def drain(self, grace: float) -> None:
        """Wait up to grace seconds for sessions to end, then abort the rest."""
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
    async def run(self) -> None: ...


async def start_stream_listener(
    host: str, port: int, connections: Connections, *,
    session: Callable[[asyncio.StreamReader, asyncio.StreamWriter], StreamSession],
    farewell: bytes, tls: ssl.SSLContext, implicit_tls: bool, limit: int,
) -> asyncio.Server:
    """Serve a line protocol: one session per connection, registered for shutdown.

    On shutdown a session still open after the grace period is told farewell and ended.
    """
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        current = session(reader, writer)
        task = asyncio.current_task()

        def abort() -> None:
            if not writer.is_closing():
                writer.write(farewell)
            if task is not None:
                task.cancel()

        connections.add(current, abort)
        try:
            await current.run()
        except asyncio.CancelledError:
            writer.close()
        finally:
            connections.discard(current)

    return await asyncio.start_server(
        serve, **listen_args(host, port), ssl=tls if implicit_tls else None, limit=limit,
        ssl_handshake_timeout=30 if implicit_tls else None,
    )


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
        from mailcore import dbpool, stats

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
            self.bound.append(Bound(spec.name, server))
            log.info("mailcore listening name=%s address=%s port=%d",
                     spec.name, self.host, self.bound[-1].port)
        self.flusher = asyncio.get_running_loop().create_task(self._flush_stats())
        return self.bound

    def port(self, name: str) -> int:
        return next(b.port for b in self.bound if b.name == name)

    async def stop(self, grace: float) -> None:
        for bound in self.bound:
            bound.server.close()
        await self.connections.drain(grace)
        for bound in self.bound:
            await bound.server.wait_closed()
        from mailcore import dbpool, stats
        from mailcore.store import events

        if self.flusher is not None:
            self.flusher.cancel()
        await events.hub.close()
        await dbpool.run(stats.tally.flush)
        log.info("mailcore stopped")


def configured_specs(tls: ssl.SSLContext) -> list[ListenerSpec]:
    """Return the listeners the settings ask for (a port of 0 disables one)."""
    from django.conf import settings

    from mailcore.imap.server import start_imap
    from mailcore.pop3.server import start_pop3
    from mailcore.smtp.server import start_smtp
    from mailcore.smtp.submission import start_submission

    return [
        ListenerSpec("smtp", settings.SMTP_PORT,
                     lambda h, p, c: start_smtp(h, p, c, tls=tls)),
        ListenerSpec("submission", settings.SUBMISSION_PORT,
                     lambda h, p, c: start_submission(h, p, c, tls=tls, implicit_tls=False)),
        ListenerSpec("submissions", settings.SUBMISSIONS_PORT,
                     lambda h, p, c: start_submission(h, p, c, tls=tls, implicit_tls=True)),
        ListenerSpec("pop3", settings.POP3_PORT,
                     lambda h, p, c: start_pop3(h, p, c, tls=tls, implicit_tls=False)),
        ListenerSpec("pop3s", settings.POP3S_PORT,
                     lambda h, p, c: start_pop3(h, p, c, tls=tls, implicit_tls=True)),
        ListenerSpec("imap", settings.IMAP_PORT,
                     lambda h, p, c: start_imap(h, p, c, tls=tls, implicit_tls=False)),
        ListenerSpec("imaps", settings.IMAPS_PORT,
                     lambda h, p, c: start_imap(h, p, c, tls=tls, implicit_tls=True)),
    ]
