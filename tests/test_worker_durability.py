"""Durability of the outbound queue: a Celery worker killed mid-delivery loses no mail.

The worker killed mid-delivery: the message is delivered after restart, exactly once or
at worst retried, never lost. Real processes throughout: Celery workers on the embedded
(filesystem) broker against the test database, and a loopback SMTP peer that stalls
before answering the final dot of DATA, so the first worker dies holding the message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from mailcore.models import OutboundMessage, OutboundRecipient
from mailcore.store.delivery import deliver
from tests.servers import ROOT, database_url
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RAW = (b"From: alice@example.test\r\nTo: carol@remote.test\r\nSubject: Do not lose me\r\n"
       b"Message-ID: <durable@example.test>\r\n\r\nA line.\r\n..A dot-stuffed line.\r\n")
LEASE = 3  # seconds a worker holds a recipient; a dead worker's lease runs out this fast
BUDGET = 55  # seconds for the whole test
State = OutboundRecipient.State


class _PeerHandler(socketserver.StreamRequestHandler):
    """One SMTP session (RFC 5321 section 4.1 commands, no extensions) of StallingPeer."""

    server: _PeerServer

    def handle(self) -> None:
        self.connection.settimeout(BUDGET)
        self.reply("220 peer.test ESMTP")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.reply("250 peer.test")
            elif verb == b"MAIL":
                self.reply("250 2.1.0 OK")
            elif verb == b"RCPT":
                self.reply("250 2.1.5 OK")
            elif verb in (b"RSET", b"NOOP"):
                self.reply("250 2.0.0 OK")
            elif verb == b"QUIT":
                self.reply("221 2.0.0 Bye")
                return
            elif verb == b"DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                if not self.data(self.read_data()):
                    return
            else:
                self.reply("500 5.5.2 Unknown command")

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) != b".\r\n":
            if not line:
                raise ConnectionError("closed during DATA")
            lines.append(line[1:] if line.startswith(b".") else line)
        return b"".join(lines)

    def data(self, content: bytes) -> bool:
        """Accept content, or stall without a reply until the client goes away."""
        if self.server.stalling.is_set():
            self.server.data_seen.set()
            while self.rfile.read(1):
                pass
            return False
        with self.server.lock:
            self.server.accepted.append(content)
        self.reply("250 2.0.0 Queued")
        return True


class _PeerServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _PeerHandler)
        self.stalling = threading.Event()
        self.data_seen = threading.Event()
        self.lock = threading.Lock()
        self.accepted: list[bytes] = []


class StallingPeer:
    """A next hop on 127.0.0.1 that accepts RCPT but, while stalling, never answers DATA."""

    def __init__(self) -> None:
        self.server = _PeerServer()
        self.server.stalling.set()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StallingPeer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def data_seen(self) -> threading.Event:
        return self.server.data_seen

    @property
    def accepted(self) -> list[bytes]:
        with self.server.lock:
            return list(self.server.accepted)

    def answer_normally(self) -> None:
        self.server.stalling.clear()


class Worker:
    """A `celery -A panel worker --pool solo` process in its own session."""

    def __init__(self, env: dict[str, str], name: str, log: Path) -> None:
        self.env, self.name, self.log = env, name, log
        self.proc: subprocess.Popen | None = None

    def start(self, deadline: float) -> Worker:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "panel", "worker", "--pool", "solo",
                 "--loglevel", "INFO", "-n", f"{self.name}@%h", "--without-mingle",
                 "--without-gossip", "--without-heartbeat"],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_until(lambda: self.proc.poll() is not None or " ready." in self.text(),
                   f"worker {self.name} to start", left(deadline), details=self.text)
        if self.proc.poll() is not None:
            raise AssertionError(f"worker {self.name} did not start:\n{self.text()}")
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker and whatever it started: no cleanup, no acknowledgement."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def worker_env(data_dir: Path, peer_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BLOB_DIR")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "panel.settings",
        "DATABASE_URL": database_url(),
        "DATA_DIR": str(data_dir),  # the filesystem broker's folders live here
        "CELERY_BROKER_URL": "filesystem://",
        "BLOB_DIR": str(settings.BLOB_DIR),
        "SECRET_KEY": settings.SECRET_KEY,
        "MAIL_HOSTNAME": "worker.example.test",
        "OUTBOUND_TRANSPORTS": f"remote.test=127.0.0.1:{peer_port}",
        "OUTBOUND_LEASE": str(LEASE),
        "OUTBOUND_TIMEOUT": str(BUDGET),  # only the SIGKILL ends the stalled attempt
        "DNS_RESOLVER": "127.0.0.1:1",
        "LOG_LEVEL": "INFO",
    })
    return env


def sweep(env: dict[str, str], deadline: float) -> None:
    """Publish mailcore.tasks.sweep_outbound on the real broker, as beat does."""
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "panel", "call", "mailcore.tasks.sweep_outbound"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True,
        timeout=max(deadline - time.monotonic(), 1),
    )


def left(deadline: float) -> float:
    """Return the seconds left before the test's deadline (for the step at hand)."""
    return max(deadline - time.monotonic(), 0.0)


def test_a_worker_killed_mid_delivery_leaves_the_message_to_the_next_worker(tmp_path) -> None:
    deadline = time.monotonic() + BUDGET
    broker_dir = tmp_path / "worker-data"
    with StallingPeer() as peer:
        env = worker_env(broker_dir, peer.port)
        outbound_id = deliver(RAW, "alice@example.test", [], ["carol@remote.test"]).outbound_id
        recipient = OutboundMessage.objects.get(pk=outbound_id).recipients.get()
        first = Worker(env, "first", tmp_path / "first.log")
        second = Worker(env, "second", tmp_path / "second.log")
        try:
            first.start(deadline)
            sweep(env, deadline)
            wait_until(peer.data_seen.is_set, "the worker to reach the end of DATA",
                       left(deadline), details=first.text)
            recipient.refresh_from_db()
            assert (recipient.state, recipient.attempts) == (State.QUEUED, 1)
            assert recipient.leased_until > timezone.now()

            first.kill()
            peer.answer_normally()
            assert peer.accepted == []

            second.start(deadline)
            # The dead worker's lease runs out; then the next sweep hands the message out.
            recipient.refresh_from_db()
            assert recipient.state == State.QUEUED
            expired = recipient.leased_until.timestamp()
            wait_until(lambda: time.time() > expired + 0.2, "the dead worker's lease to end",
                       left(deadline))
            sweep(env, deadline)

            def delivered() -> bool:
                recipient.refresh_from_db()
                return recipient.state != State.QUEUED

            wait_until(delivered, "delivery after the restart", left(deadline), interval=0.2,
                       details=second.text)
        finally:
            first.kill()
            second.kill()
        assert (recipient.state, recipient.attempts) == (State.DELIVERED, 2)
        assert recipient.last_response.startswith("250 2.0.0")
        assert recipient.leased_until is None
        assert 1 <= len(peer.accepted) <= 2
        assert all(content == RAW for content in peer.accepted)
        assert "Traceback" not in second.text()
