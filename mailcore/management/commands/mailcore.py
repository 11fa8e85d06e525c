"""Run the mail listeners (SMTP, submission, POP3, IMAP) until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from mailcore import dbpool
from mailcore.listeners import MailServer, configured_specs
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


class Command(BaseCommand):
    help = "Serve every mail protocol on the ports the settings name (a port of 0 disables one)."

    def handle(self, *args, **options) -> None:
        _return_large_blocks()
        asyncio.run(self.serve())

    async def serve(self) -> None:
        server = MailServer(configured_specs(server_context()), settings.MAIL_BIND_ADDRESS)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        log.info("mailcore ready hostname=%s", settings.MAIL_HOSTNAME)
        await stop.wait()
        log.info("mailcore stopping: no new connections, draining for up to %.0fs",
                 settings.SHUTDOWN_GRACE)
        await server.stop(settings.SHUTDOWN_GRACE)
        dbpool.shutdown()
