"""Tell a container runtime whether this container's service answers (exit status 0 or 1)."""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# The first line a listener sends: SMTP's 220, IMAP's untagged OK, POP3's +OK.
GREETINGS = (b"220 ", b"220-", b"* OK", b"+OK")


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"--address must be host:port, not {value!r}")
    return host.strip("[]"), int(port)


class Command(BaseCommand):
    help = ("Check a service of this container: `web` asks /healthz (which asks the database), "
            "`mailcore` wants a listener's greeting. Exit status 0 when it answers.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("service", choices=["web", "mailcore"])
        parser.add_argument("--address", help="host:port to ask (default: this container's "
                            "web port 8000, or the first mail listener enabled)")
        parser.add_argument("--timeout", type=float, default=5.0)

    def handle(self, *args, **options) -> None:
        if options["service"] == "web":
            self.check_web(_address(options["address"] or "127.0.0.1:8000"), options["timeout"])
        else:
            self.check_mailcore(self._mail_address(options["address"]), options["timeout"])
        self.stdout.write("ok")

    def check_web(self, address: tuple[str, int], timeout: float) -> None:
        # Asked on the site's own name, so that Django's host check lets the request in.
        host = urlsplit(settings.SITE_URL).netloc if settings.SITE_URL else "localhost"
        conn = http.client.HTTPConnection(*address, timeout=timeout)
        try:
            conn.request("GET", "/healthz", headers={"Host": host})
            response = conn.getresponse()
            body = response.read(100)
        except OSError as exc:
            raise CommandError(f"web: {address[0]}:{address[1]} does not answer: {exc}") from None
        finally:
            conn.close()
        if response.status != 200 or body.strip() != b"ok":
            raise CommandError(f"web: /healthz answered {response.status} {body!r}")

    def _mail_address(self, value: str | None) -> tuple[str, int]:
        if value:
            return _address(value)
        bound = settings.MAIL_BIND_ADDRESS
        host = "127.0.0.1" if bound in ("", "0.0.0.0", "::") else bound
        for name in ("SMTP_PORT", "SUBMISSION_PORT", "IMAP_PORT", "POP3_PORT"):
            port = getattr(settings, name, 0)
            if port:
                return host, port
        raise CommandError("mailcore: no plaintext-greeting listener is enabled to ask")

    def check_mailcore(self, address: tuple[str, int], timeout: float) -> None:
        try:
            with socket.create_connection(address, timeout=timeout) as sock:
                greeting = sock.makefile("rb").readline(512)
        except OSError as exc:
            raise CommandError(
                f"mailcore: {address[0]}:{address[1]} does not answer: {exc}") from None
        if not greeting.startswith(GREETINGS):
            raise CommandError(f"mailcore: {address[0]}:{address[1]} greeted {greeting!r}")
