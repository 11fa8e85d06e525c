"""Durability: what a real mailcore process keeps across kill -9, SIGTERM and vanishing peers."""

from __future__ import annotations

import poplib
import re
import signal
import smtplib
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from mailcore.models import Blob
from mailcore.store.blobs import blob_store
from tests.conftest import PASSWORD
from tests.mailboxes import inbox
from tests.servers import RawClient, ServerProcess, refuses_connections
from tests.waiting import wait_until

ALICE = "alice@example.test"
SENDERS = 6
KILL_AFTER = 60  # acknowledged messages before the SIGKILL
_TEST_ID = re.compile(rb"^X-Test-Id: (\S+)\r$", re.M)


def message_for(test_id: str) -> bytes:
    """Return the exact message sent for test_id: a few KB, with dot-leading lines."""
    lines = [f"line {n:03d} of {test_id}: {'x' * (n % 50)}" for n in range(60)]
    lines[10] = ".a line that starts with a dot"
    lines[20] = "."
    body = "\r\n".join(lines)
    return (f"From: <sender@remote.test>\r\nTo: <{ALICE}>\r\nSubject: durability {test_id}\r\n"
            f"X-Test-Id: {test_id}\r\n\r\n{body}\r\n").encode()


def download_all(proc: ServerProcess) -> list[bytes]:
    """Return every message in alice's maildrop over POP3, leaving them on the server."""
    pop = poplib.POP3("127.0.0.1", proc.port("pop3"), timeout=10)
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    count, _ = pop.stat()
    messages = []
    for number in range(1, count + 1):
        _, lines, _ = pop.retr(number)
        messages.append(b"\r\n".join(lines) + b"\r\n")
    pop.quit()
    return messages



def assert_log_clean(proc: ServerProcess) -> None:
    """Fail if the process logged an internal error (its log is not this test's log)."""
    text = proc.log_path.read_text(errors="replace")
    bad = [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]
    assert not bad, "mailcore logged errors:\n" + text


def open_data(port: int, subject: str) -> RawClient:
    """Open an SMTP session to alice that is inside DATA, the header already sent."""
    client = RawClient(port)
    assert client.smtp_reply().startswith("220 ")
    client.transact("EHLO client.remote.test", "250", smtp=True)
    client.transact("MAIL FROM:<sender@remote.test>", "250", smtp=True)
    client.transact(f"RCPT TO:<{ALICE}>", "250", smtp=True)
    client.transact("DATA", "354", smtp=True)
    client.send(f"From: <sender@remote.test>\r\nSubject: {subject}\r\n\r\n".encode())
    return client


# kill -9 ----------------------------------------------------------------------------------

def test_every_message_acknowledged_before_kill_9_survives_intact(blob_backend, server_process,
                                                                 alice, tmp_path: Path):
    # blob_backend: files, then the S3 server (set before the process starts).
    port = server_process.port("smtp")
    acknowledged: set[str] = set()
    attempted: set[str] = set()
    lock = threading.Lock()
    killed = threading.Event()

    def sender(n: int) -> None:
        seq = 0
        while not killed.is_set():
            try:
                smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
            except OSError:
                return  # the process is gone
            try:
                while True:
                    test_id = f"s{n}-m{seq}"
                    seq += 1
                    with lock:
                        attempted.add(test_id)
                    smtp.sendmail("sender@remote.test", [ALICE], message_for(test_id))
                    # Recorded only once the 250 after DATA has been read.
                    with lock:
                        acknowledged.add(test_id)
                    if seq % 7 == 0:  # some senders reconnect, some reuse the session
                        smtp.quit()
                        break
            except (smtplib.SMTPException, OSError):
                if not killed.is_set():
                    raise
                return

    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            sender(n)
        except BaseException as exc:  # surfaced below: no sender may fail before the kill
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,), daemon=True)
               for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(acknowledged) >= KILL_AFTER or errors,
               f"{KILL_AFTER} acknowledged messages", 20)
    assert not errors, errors
    killed.set()
    server_process.kill()  # SIGKILL, mid-stream: the senders are still sending
    for thread in threads:
        thread.join(15)
    assert not errors, errors
    with lock:
        acknowledged_now, attempted_now = set(acknowledged), set(attempted)
    assert len(acknowledged_now) >= KILL_AFTER
    assert attempted_now - acknowledged_now, "the kill did not land mid-stream"
    assert server_process.proc.returncode == -signal.SIGKILL

    assert_acknowledged_survive(server_process, tmp_path, attempted_now, acknowledged_now)


def test_kill_9_while_many_sessions_end_data_at_once_keeps_every_acknowledged_one(
        server_process, alice, tmp_path: Path):
    # Concurrent deliveries are committed together (mailcore.store.groupcommit): a kill
    # while a group is being written must lose no message that was answered 250.
    port = server_process.port("smtp")
    acknowledged: set[str] = set()
    ended: set[str] = set()
    rounds = 5
    for round_number in range(rounds):
        sessions = {}
        for n in range(10):
            client = RawClient(port)
            assert client.smtp_reply().startswith("220 ")
            client.transact("EHLO client.remote.test", "250", smtp=True)
            client.transact("MAIL FROM:<sender@remote.test>", "250", smtp=True)
            client.transact(f"RCPT TO:<{ALICE}>", "250", smtp=True)
            client.transact("DATA", "354", smtp=True)
            test_id = f"r{round_number}-s{n}"
            client.send(message_for(test_id).replace(b"\r\n.", b"\r\n.."))  # dot-stuffed
            sessions[test_id] = client
        for test_id, client in sessions.items():  # every session ends its DATA at once
            client.send(b".\r\n")
            ended.add(test_id)
        for test_id, client in sessions.items():
            assert client.smtp_reply().startswith("250 2.0.0 "), test_id
            acknowledged.add(test_id)
            if round_number == rounds - 1:
                break  # the first answer of the last round: kill while the rest commit
        else:
            for client in sessions.values():
                client.close()
    server_process.kill()
    # Replies already on their way when the kill landed count as acknowledged too.
    for test_id, client in sessions.items():
        client.sock.settimeout(5)
        try:
            if test_id not in acknowledged and client.smtp_reply().startswith("250 "):
                acknowledged.add(test_id)
        except (ConnectionError, TimeoutError):
            pass
    assert server_process.proc.returncode == -signal.SIGKILL

    assert_acknowledged_survive(server_process, tmp_path, ended, acknowledged)


# SIGTERM ----------------------------------------------------------------------------------

def test_sigterm_refuses_new_connections_and_lets_an_open_session_finish(server_process,
                                                                        alice):
    client = open_data(server_process.port("smtp"), "in flight at SIGTERM")
    client.send(b"first half\r\n")

    server_process.proc.send_signal(signal.SIGTERM)
    for name in ("smtp", "pop3", "pop3s"):
        wait_until(lambda name=name: refuses_connections(server_process.port(name)),
                   f"{name} to stop accepting", 5)
    assert server_process.proc.poll() is None, "exited with a session still open"

    client.send(b"second half\r\n.\r\n")
    assert client.smtp_reply().startswith("250 2.0.0 ")
    # Answered, the session waits for its next command: a shutdown tells it at once.
    assert client.smtp_reply().startswith("421 4.3.2 ")
    client.close()
    quit_at = time.monotonic()
    assert server_process.proc.wait(10) == 0
    # It exits once the last session ends, not after the whole grace period.
    assert time.monotonic() - quit_at < 4
    assert_log_clean(server_process)

    [message] = inbox(alice)
    assert message.subject == "in flight at SIGTERM"
    assert blob_store().get(message.blob_id).endswith(
        b"\r\nSubject: in flight at SIGTERM\r\n\r\nfirst half\r\nsecond half\r\n")


def test_sigterm_ends_idle_sessions_after_the_grace_period_and_exits_0(server_process,
                                                                      alice):
    with smtplib.SMTP("127.0.0.1", server_process.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("sender@remote.test", [ALICE], b"Subject: keep me\r\n\r\nkept\r\n")
    smtp_client = open_data(server_process.port("smtp"), "never finished")
    smtp_client.send(b"half a message\r\n")
    pop = RawClient(server_process.port("pop3"))
    assert pop.line().startswith("+OK")
    pop.transact(f"USER {ALICE}", "+OK")
    pop.transact(f"PASS {PASSWORD}", "+OK")
    pop.transact("DELE 1", "+OK")

    started = time.monotonic()
    server_process.proc.send_signal(signal.SIGTERM)
    # SHUTDOWN_GRACE is 5 s for ServerProcess: then each session is told and closed.
    assert smtp_client.smtp_reply().startswith("421 4.3.2 ")
    assert smtp_client.closed()
    assert pop.line().startswith("-ERR [SYS/TEMP]")
    assert pop.closed()
    assert server_process.proc.wait(10) == 0
    elapsed = time.monotonic() - started
    assert 4 < elapsed < 9, elapsed
    assert_log_clean(server_process)

    # The half message is not stored; the DELE without QUIT is not applied (RFC 1939
    # section 6), and the maildrop lock is released for the next session.
    assert [m.subject for m in inbox(alice)] == ["keep me"]
    alice.refresh_from_db()
    assert alice.pop3_lock == ""


# A vanishing client -----------------------------------------------------------------------

@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_vanishing_mid_data_stores_nothing(server_process, alice, how):
    client = open_data(server_process.port("smtp"), "vanished")
    client.send(b"a body that never ends\r\n" * 100)
    if how == "reset":
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()

    # A message sent afterwards is stored; it is then the only one (and the only blob).
    with smtplib.SMTP("127.0.0.1", server_process.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("sender@remote.test", [ALICE], b"Subject: after\r\n\r\nafter\r\n")
    time.sleep(0.3)  # let the server finish with the vanished session
    assert [m.subject for m in inbox(alice)] == ["after"]
    assert Blob.objects.count() == 1
    assert len([p for p in Path(settings.BLOB_DIR).rglob("*") if p.is_file()]) == 1
    assert_log_clean(server_process)
    assert server_process.terminate() == 0
    assert_log_clean(server_process)


def assert_acknowledged_survive(server_process, tmp_path: Path, sent: set[str],
                                acknowledged: set[str]) -> None:
    """Restart after the kill: every message answered 250 is there once and intact, and
    nothing is there that was not sent."""
    restarted = ServerProcess(tmp_path / "mailcore", ports=server_process.ports).start()
    try:
        messages = download_all(restarted)
    finally:
        exit_code = restarted.terminate()
    assert exit_code == 0
    assert_log_clean(restarted)
    found: dict[str, int] = {}
    for raw in messages:
        [test_id] = _TEST_ID.findall(raw)
        test_id = test_id.decode()
        assert test_id in sent, test_id
        found[test_id] = found.get(test_id, 0) + 1
        # Intact: the exact bytes sent, below the trace fields mailcore put on top.
        assert raw.endswith(message_for(test_id)), test_id
    assert not {i for i, n in found.items() if n > 1}, "stored more than once"
    missing = acknowledged - set(found)
    assert not missing, f"acknowledged with 250 but lost: {sorted(missing)}"
