"""Two mailcore nodes behind HAProxy (deploy/haproxy.cfg), sharing the database and S3.

Node A listens on 127.0.0.2, node B on 127.0.0.3; both keep blobs in the test's S3
server and share the test database (and Redis when REDIS_URL is set: pub/sub for IDLE).
Clients connect from 127.0.0.9, which is no proxy of theirs; HAProxy connects from
127.0.0.1, the one address the nodes trust to send a PROXY header.
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mailcore.store.blobs import blob_store
from tests.conftest import PASSWORD, require_program
from tests.mailboxes import inbox
from tests.servers import NAMES, RawClient, ServerProcess, free_port, listens
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
NODE_A, NODE_B, CLIENT = "127.0.0.2", "127.0.0.3", "127.0.0.9"
ALICE = "alice@example.test"

pytestmark = pytest.mark.django_db(transaction=True)


def connect(host: str, port: int) -> RawClient:
    """A scripted client connected from CLIENT to host:port (RawClient dials 127.0.0.1)."""
    client = RawClient.__new__(RawClient)
    client.sock = socket.create_connection((host, port), 10, source_address=(CLIENT, 0))
    client.buffer = b""
    return client


@pytest.fixture
def nodes(s3_blobs, alice, tmp_path: Path):
    """Node A and node B: two `manage.py mailcore` processes on their own addresses."""
    started = []
    for name, address in (("a", NODE_A), ("b", NODE_B)):
        started.append(ServerProcess(tmp_path / name, {
            "MAIL_BIND_ADDRESS": address, "TRUSTED_PROXIES": "127.0.0.1",
        }).start())
    yield started
    for node in started:
        if node.proc and node.proc.poll() is None:
            node.terminate()


@pytest.fixture
def haproxy(nodes, tmp_path: Path):
    """deploy/haproxy.cfg as shipped, its addresses given in the environment; the fronts."""
    node_a, node_b = nodes
    fronts = {name: free_port() for name in NAMES}
    env = {**os.environ, "WEB_FRONT": f"127.0.0.1:{free_port()}",
           "WEB1": "127.0.0.1:9", "WEB2": "127.0.0.1:9"}
    for name in NAMES:
        env[f"{name.upper()}_FRONT"] = f"127.0.0.1:{fronts[name]}"
        env[f"MAILCORE1_{name.upper()}"] = f"{NODE_A}:{node_a.port(name)}"
        env[f"MAILCORE2_{name.upper()}"] = f"{NODE_B}:{node_b.port(name)}"
    log = tmp_path / "haproxy.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([require_program("haproxy"), "-db", "-f",
                                 str(ROOT / "deploy" / "haproxy.cfg")],
                                env=env, stdout=out, stderr=subprocess.STDOUT)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited: {log.read_text()}")
        return all(listens(port) for port in fronts.values())

    wait_until(up, "haproxy to listen", 10)
    yield fronts
    proc.terminate()
    proc.wait(10)


def smtp_to(host: str, port: int, subject: str) -> str:
    client = connect(host, port)
    assert client.smtp_reply().startswith("220 ")
    client.transact("EHLO client.remote.test", "250", smtp=True)
    reply = client.send_mail(f"Subject: {subject}\r\n\r\nbody\r\n".encode(),
                             "sender@remote.test", (ALICE,))
    client.transact("QUIT", "221", smtp=True)
    client.close()
    return reply


def test_a_message_delivered_through_node_a_wakes_an_idle_client_on_node_b(nodes, haproxy,
                                                                           alice):
    node_a, node_b = nodes
    idle = connect(NODE_B, node_b.port("imap"))
    assert idle.line().startswith("* OK")
    idle.transact(f'a LOGIN {ALICE} "{PASSWORD}"', "a OK")
    idle.send("b SELECT INBOX")
    while not (line := idle.line()).startswith("b "):
        pass
    assert line.startswith("b OK")
    idle.transact("c IDLE", "+ ")

    assert smtp_to(NODE_A, node_a.port("smtp"), "through A").startswith("250 ")
    acknowledged_at = time.monotonic()
    idle.sock.settimeout(10)
    assert idle.line() == "* 1 EXISTS"
    print(f"node B's IDLE heard of it {time.monotonic() - acknowledged_at:.2f}s after A's 250")
    idle.send("DONE")
    while not (line := idle.line()).startswith("c "):
        assert line.startswith("* "), line  # * 1 RECENT, say
    assert line.startswith("c OK")
    idle.close()
    [message] = inbox(alice)
    assert blob_store().get(message.blob_id).endswith(b"Subject: through A\r\n\r\nbody\r\n")


def test_a_pop3_session_on_node_a_locks_the_maildrop_against_node_b(nodes, haproxy):
    node_a, node_b = nodes
    on_a = connect(NODE_A, node_a.port("pop3"))
    assert on_a.line().startswith("+OK")
    on_a.transact(f"USER {ALICE}", "+OK")
    on_a.transact(f"PASS {PASSWORD}", "+OK")

    on_b = connect(NODE_B, node_b.port("pop3"))
    assert on_b.line().startswith("+OK")
    on_b.transact(f"USER {ALICE}", "+OK")
    on_b.transact(f"PASS {PASSWORD}", "-ERR [IN-USE]")
    on_b.close()

    on_a.transact("QUIT", "+OK")
    on_a.close()
    again = connect(NODE_B, node_b.port("pop3"))
    assert again.line().startswith("+OK")
    again.transact(f"USER {ALICE}", "+OK")
    again.transact(f"PASS {PASSWORD}", "+OK")
    again.transact("QUIT", "+OK")


def test_haproxy_spreads_connections_over_both_nodes_with_the_real_client_address(
        nodes, haproxy):
    for n in range(4):
        assert smtp_to("127.0.0.1", haproxy["smtp"], f"via haproxy {n}").startswith("250 ")
    for node in nodes:
        text = node.log_path.read_text()
        # Each node served some, and saw the client's own address, named by the proxy.
        assert re.search(rf"peer={re.escape(CLIENT)} connect proxy=127\.0\.0\.1", text), text
    assert len(inbox_subjects()) == 4


def haproxy_log(nodes) -> Path:
    return nodes[0].data_dir.parent / "haproxy.log"


def inbox_subjects() -> list[str]:
    from mailcore.models import Message

    return list(Message.objects.values_list("subject", flat=True))


def test_kill_9_of_node_a_under_load_through_haproxy_loses_no_acknowledged_message(
        nodes, haproxy, alice):
    node_a, _ = nodes
    acknowledged: set[str] = set()
    stop = threading.Event()
    lock = threading.Lock()

    def sender(n: int) -> None:
        seq = 0
        while not stop.is_set():
            subject = f"s{n}-m{seq}"
            seq += 1
            try:
                with smtplib.SMTP("127.0.0.1", haproxy["smtp"], timeout=10,
                                  source_address=(CLIENT, 0)) as smtp:
                    smtp.sendmail("sender@remote.test", [ALICE],
                                  f"Subject: {subject}\r\n\r\nbody\r\n".encode())
            except (smtplib.SMTPException, OSError):
                continue  # node A died under this one: not acknowledged, try again
            with lock:
                acknowledged.add(subject)

    threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(acknowledged) >= 20, "20 acknowledged messages", 30)
    node_a.kill()
    count = len(acknowledged)
    wait_until(lambda: len(acknowledged) >= count + 20, "node B to take the load", 30)
    # HAProxy's health checks (through the PROXY header) find A dead and B alive.
    log = haproxy_log(nodes)
    wait_until(lambda: "Server smtp/mailcore1 is DOWN" in log.read_text(),
               "haproxy to mark node A down", 40)
    assert "mailcore2 is DOWN" not in log.read_text()
    stop.set()
    for thread in threads:
        thread.join(15)
    subjects = inbox_subjects()
    assert acknowledged <= set(subjects), sorted(acknowledged - set(subjects))
    assert len(set(subjects)) == len(subjects), "a message was stored twice"
    store = blob_store()  # and every stored message's bytes are in S3
    for message in inbox(alice):
        assert store.get(message.blob_id).endswith(b"\r\n\r\nbody\r\n")
