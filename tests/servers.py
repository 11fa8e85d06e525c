"""Test harness: mailcore in a thread or a subprocess, and a scripted raw-socket client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from mailcore import dbpool
from mailcore.listeners import MailServer
from mailcore.servers import configured_specs
from mailcore.tls import server_context
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")


class ServerThread:
    """Run every listener on 127.0.0.1, any free port, on an event loop in a thread.

    start() returns once every listener is bound; port(name) reads the port it got.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.server: MailServer | None = None
        self.stopped: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        specs = configured_specs(server_context())
        for spec in specs:
            spec.port = -1  # "auto": the system picks a free port as the listener binds
        self.server = MailServer(specs, "127.0.0.1")
        self.stopped = asyncio.Event()
        await self.server.start()
        self.ready.set()
        await self.stopped.wait()
        await self.server.stop(grace=2)

    def start(self) -> ServerThread:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("mailcore did not start")
        return self

    def port(self, name: str) -> int:
        assert self.server is not None
        return self.server.port(name)

    def stop(self) -> None:
        assert self.stopped is not None
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(15)
        dbpool.shutdown()


def free_port() -> int:
    """Return a loopback port that is free now, for a third-party program to listen on.

    Only for programs that cannot listen on port 0 and tell which port they got (Caddy,
    HAProxy, Dovecot); our own servers do that instead. The race: the port is free when
    this socket closes, and another process may take it before the program binds it; the
    program then fails to start, and the test with it, loudly.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def refusing_port() -> Iterator[int]:
    """Yield a loopback port that refuses connections (a host that is down) until the end.

    The port stays bound, never listening, so no one else can take it meanwhile.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def reported_ports(path: Path) -> dict[str, int] | None:
    """Return the ports mailcore reported in its MAILCORE_PORTS_FILE, or None before that."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def database_url() -> str:
    """Return a DATABASE_URL for the test database this process uses."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def listens(port: int) -> bool:
    """Tell whether something accepts connections on a loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


def refuses_connections(port: int) -> bool:
    """Tell whether nothing listens on a loopback port any more."""
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return False
    except ConnectionRefusedError:
        return True


class ServerProcess:
    """Run `manage.py mailcore` as a real process against the test database.

    Every listener binds a port the system picks ("auto"), unless ports names them: those
    of an earlier run, to start again where clients found it. start() returns once
    mailcore has reported its ports (MAILCORE_PORTS_FILE), that is once every listener is
    bound.
    """

    def __init__(self, data_dir: Path, environment: dict[str, str] | None = None,
                 ports: dict[str, int] | None = None) -> None:
        self.data_dir = data_dir
        self.environment = environment or {}  # settings beyond the test's own, e.g. processes
        self.ports = dict(ports or {})
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "mailcore.log"
        self.ports_path = data_dir / "ports.json"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": database_url(),
            "DATA_DIR": str(self.data_dir),
            "BLOB_DIR": str(settings.BLOB_DIR),
            "BLOB_STORE": settings.BLOB_STORE,
            "BLOB_S3_ENDPOINT": settings.BLOB_S3_ENDPOINT,
            "BLOB_S3_REGION": settings.BLOB_S3_REGION,
            "BLOB_S3_ADDRESSING": settings.BLOB_S3_ADDRESSING,
            "SECRET_KEY": settings.SECRET_KEY,
            "TLS_CERT_FILE": str(settings.TLS_CERT_FILE or ""),
            "TLS_KEY_FILE": str(settings.TLS_KEY_FILE or ""),
            "MAIL_BIND_ADDRESS": "127.0.0.1",
            "MAIL_HOSTNAME": settings.MAIL_HOSTNAME,
            "AUTH_FAILURE_DELAY": str(settings.AUTH_FAILURE_DELAY),
            "AUTH_FAILURE_DELAY_MAX": str(settings.AUTH_FAILURE_DELAY_MAX),
            "ARGON2_TIME_COST": str(settings.ARGON2_TIME_COST),
            "ARGON2_MEMORY_COST": str(settings.ARGON2_MEMORY_COST),
            "SHUTDOWN_GRACE": "5",
            "INBOUND_AUTH": "1" if settings.INBOUND_AUTH else "0",
            "INBOUND_DNS_FAILURE": settings.INBOUND_DNS_FAILURE,
            "MAILCORE_PORTS_FILE": str(self.ports_path),
        })
        env.update({f"{name.upper()}_PORT": str(self.ports.get(name, "auto")) for name in NAMES})
        env.update(self.environment)
        return env

    def start(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ports_path.unlink(missing_ok=True)  # an earlier run's
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "mailcore"],
                cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            )
        self.ports = wait_until(self._reported_ports, "mailcore to report its ports",
                                details=lambda: "\n" + self.log_path.read_text())
        return self

    def _reported_ports(self) -> dict[str, int] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"mailcore exited: {self.log_path.read_text()}")
        return reported_ports(self.ports_path)

    def port(self, name: str) -> int:
        return self.ports[name]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(30)


class RawClient:
    """A scripted client: send exact bytes, check exact replies (like mox's transactf)."""

    def __init__(self, port: int, tls: bool = False, timeout: float = 10,
                 source: str = "", host: str = "127.0.0.1") -> None:
        # source: another loopback address (127.0.0.2, ...) to connect from, for tests of
        # what the server does per client address; host: a server on another one.
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
            (host, port), timeout, source_address=(source, 0) if source else None)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="localhost")
        self.buffer = b""

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode() + b"\r\n"
        self.sock.sendall(data)

    def line(self) -> str:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def send_mail(self, body: bytes, mail_from: str, rcpts: tuple[str, ...]) -> str:
        """Run one SMTP transaction on this session; return the reply to the end of data."""
        self.transact(f"MAIL FROM:<{mail_from}>", "250 2.1.0", smtp=True)
        for rcpt in rcpts:
            self.transact(f"RCPT TO:<{rcpt}>", "250 2.1.5", smtp=True)
        self.transact("DATA", "354 ", smtp=True)
        self.send(body + b".\r\n")
        return self.smtp_reply()

    def smtp_reply(self) -> str:
        """Read a whole (possibly multi-line) SMTP reply; return its last line."""
        while True:
            line = self.line()
            if len(line) < 4 or line[3] != "-":
                return line

    def multiline(self) -> list[str]:
        """Read a POP3 multi-line body up to the terminating dot (un-stuffing dots)."""
        lines = []
        while (line := self.line()) != ".":
            lines.append(line[1:] if line.startswith("..") else line)
        return lines

    def transact(self, command: str, expected: str, smtp: bool = False) -> str:
        self.send(command)
        reply = self.smtp_reply() if smtp else self.line()
        assert reply.startswith(expected), f"{command!r}: got {reply!r}, want {expected!r}"
        return reply

    def starttls(self) -> None:
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="localhost")

    def closed(self, timeout: float = 5) -> bool:
        """Return whether the server closed the connection (after any pending lines)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (ConnectionError, ssl.SSLError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def client_tls_context() -> ssl.SSLContext:
    """Trust the server's self-signed certificate, and check the name, as a careful client."""
    from mailcore.tls import certificate_paths

    cert, _ = certificate_paths()
    context = ssl.create_default_context(cafile=str(cert))
    return context
