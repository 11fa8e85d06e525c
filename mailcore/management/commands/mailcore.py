"""Run the mail listeners (SMTP, submission, POP3, IMAP) until SIGTERM or SIGINT.

One process serves them all, or with MAILCORE_PROCESSES above one a supervisor runs that
many worker processes on the same listening sockets (mailcore/supervisor.py).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import resource
import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from mailcore import dbpool, siblings
from mailcore.listeners import MailServer, bind, report_ports
from mailcore.servers import configured_specs
from mailcore.store import events
from mailcore.supervisor import Supervisor, Worker
from mailcore.tls import server_context

log = logging.getLogger("mailcore")


def _return_large_blocks() -> None:
    """Make glibc give large freed blocks back to the system at once.

    Each password check uses 19 MiB of argon2 memory; with glibc's adaptive threshold
    every database-pool thread kept that much after a burst of logins (about 150 MB).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 128 * 1024)


def _raise_open_files_limit() -> None:
    """Let mailcore hold as many connections as the hard limit on open files allows.

    Every connection is a descriptor, and the soft limit is often 1,024 (systemd, Docker)
    while the hard one is far higher: ten thousand IDLE sessions need the hard one. Go does
    the same for every program at start-up.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # refused: serve within the soft limit
            log.warning("could not raise the open files limit from %d to %d", soft, hard)


class Command(BaseCommand):
    help = ("Serve every mail protocol on the ports the settings name (a port of 0 disables "
            "one, \"auto\" lets the system pick), in MAILCORE_PROCESSES worker processes; "
            "with MAILCORE_PORTS_FILE, write the bound ports there once listening.")

    def handle(self, *args, **options) -> None:
        _return_large_blocks()
        _raise_open_files_limit()
        if settings.MAILCORE_PROCESSES == 1:
            asyncio.run(self.serve())
            return
        # The certificate is made here, once, rather than by every worker at the same time.
        sockets = bind(configured_specs(server_context()), settings.MAIL_BIND_ADDRESS)
        # Reported as soon as the sockets are bound, before any worker accepts: a client
        # that connects from then on waits in the listen backlog until a worker takes it.
        if settings.MAILCORE_PORTS_FILE:
            report_ports(settings.MAILCORE_PORTS_FILE,
                         {name: sock.getsockname()[1] for name, sock in sockets.items()})
        supervisor = Supervisor(settings.MAILCORE_PROCESSES, sockets, self.serve_worker,
                                settings.SHUTDOWN_GRACE)
        status = supervisor.run()
        if status:
            sys.exit(status)

    def serve_worker(self, worker: Worker) -> None:
        asyncio.run(self.serve(worker))

    async def serve(self, worker: Worker | None = None) -> None:
        server = MailServer(configured_specs(server_context()), settings.MAIL_BIND_ADDRESS,
                            sockets=worker.sockets if worker else None)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if worker is not None:
            worker.watch_supervisor(loop, stop.set)
            siblings.listen(loop, events.hub.wake)
        await server.start()
        if worker is None and settings.MAILCORE_PORTS_FILE:
            report_ports(settings.MAILCORE_PORTS_FILE, server.ports())
        log.info("mailcore ready hostname=%s", settings.MAIL_HOSTNAME)
        await stop.wait()
        log.info("mailcore stopping: no new connections, draining for up to %.0fs",
                 settings.SHUTDOWN_GRACE)
        await server.stop(settings.SHUTDOWN_GRACE)
        dbpool.shutdown()
