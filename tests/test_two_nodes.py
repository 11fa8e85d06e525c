"""Two mailcore nodes behind HAProxy share everything through Postgres, Redis and the blobs.

Node A listens on 127.0.0.2 and node B on 127.0.0.3: real `manage.py mailcore` processes
against the test's Postgres database, one Redis (login throttles, change notices) and one
blob folder, each trusting the PROXY header of 127.0.0.1 only. HAProxy runs on 127.0.0.1
with the mail part of deploy/haproxy.cfg, its binds and server addresses rewritten to the
ports the nodes and the test picked. A test that must reach one node in particular
connects to it straight from 127.0.0.4, a peer the nodes do not take for a proxy.

SQLite cannot be shared between machines, so on the SQLite run these tests are skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from mailcore.models import Message, OutboundMessage, OutboundRecipient
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver
from panel.celery import app
from tests.conftest import PASSWORD, require_program
from tests.imap_client import ALICE, IMAPClient, done, idle
from tests.servers import NAMES, ROOT, RawClient, ServerProcess, database_url, free_port, listens
from tests.sink import Sink
from tests.waiting import WAIT, wait_until

pytestmark = [
    pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                       reason="two nodes share one database, and SQLite cannot be shared "
                              "between machines: set DATABASE_URL to Postgres"),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"),
                       reason="two nodes share Redis (throttles, change notices): "
                              "REDIS_URL is not set"),
]

DEPLOY = ROOT / "deploy" / "haproxy.cfg"
CLIENT = "127.0.0.4"  # a client the nodes do not take for a proxy
NODE_HOSTS = ("127.0.0.2", "127.0.0.3")
FOREVER = "3600"  # a poll interval no test outlives: only Redis can carry a change


class Node(ServerProcess):
    """One mailcore node on a loopback address of its own."""

    def __init__(self, host: str, data_dir: Path, channel: str) -> None:
        super().__init__(data_dir, {
            "MAIL_BIND_ADDRESS": host,
            "TRUSTED_PROXIES": "127.0.0.1",
            "MAILCORE_CHANGE_CHANNEL": channel,
            "MAILCORE_CHANGE_POLL": FOREVER,
            "MAILCORE_CHANGE_POLL_SUBSCRIBED": FOREVER,
            "DNS_RESOLVER": "127.0.0.1:1",
            "DNS_TIMEOUT": "1",
            "LOG_LEVEL": "INFO",
        })
        self.host = host

    def client(self, name: str, cls: type[RawClient] = RawClient) -> RawClient:
        """Connect to this node's listener straight, bypassing HAProxy."""
        return cls(self.port(name), source=CLIENT, host=self.host)


def haproxy_config(nodes: list[Node], fronts: dict[str, int]) -> str:
    """Return deploy/haproxy.cfg's mail part, bound and pointed at this test's ports."""
    out, section, keep = [], "", True
    for line in DEPLOY.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            kind, _, section = line.partition(" ")
            keep = kind in ("global", "defaults", "listen")
        if not keep:
            continue
        if re.match(r"\s+maxconn \d+$", line):
            line = "    maxconn 200"  # within an unprivileged process's file limit
        elif re.match(r"\s+bind :\d+$", line):
            line = f"    bind 127.0.0.1:{fronts[section]}"
        elif server := re.match(r"\s+server mailcore(\d+) (\S+) ", line):
            node = nodes[int(server[1]) - 1]
            line = line.replace(server[2], f"{node.host}:{node.port(section)}")
        out.append(line)
    return "\n".join(out) + "\n"


class Cluster:
    """Nodes A and B, and HAProxy in front of them."""

    def __init__(self, tmp_path: Path) -> None:
        self.channel = f"test:changes:{uuid.uuid4().hex}"
        self.nodes = [Node(host, tmp_path / f"node-{host}", self.channel)
                      for host in NODE_HOSTS]
        self.fronts = {name: free_port() for name in NAMES}
        self.config = tmp_path / "haproxy.cfg"
        self.log = tmp_path / "haproxy.log"
        self.haproxy: subprocess.Popen | None = None

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        self.config.write_text(haproxy_config(self.nodes, self.fronts))
        with self.log.open("ab") as log:
            self.haproxy = subprocess.Popen([require_program("haproxy"), "-db", "-f",
                                             str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_until(self._listening, "haproxy to listen", details=self.logs)
        return self

    def _listening(self) -> bool:
        assert self.haproxy is not None
        if self.haproxy.poll() is not None:
            pytest.fail(f"haproxy exited:\n{self.log.read_text()}")
        return all(listens(port) for port in self.fronts.values())

    def logs(self) -> str:
        text = f"\n--- haproxy ---\n{self.log.read_text()[-3000:]}"
        for node in self.nodes:
            text += f"\n--- {node.host} ---\n{node.log_path.read_text()[-3000:]}"
        return text

    def stop(self) -> None:
        if self.haproxy is not None:
            self.haproxy.terminate()
            self.haproxy.wait(10)
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.terminate()


@pytest.fixture
def cluster(transactional_db, tmp_path: Path):
    require_program("haproxy")
    running = Cluster(tmp_path)
    try:
        yield running.start()
    finally:
        running.stop()
    # The nodes are other processes: the suite's guard against internal errors cannot see
    # their logs, so read them here.
    for node in running.nodes:
        assert "Traceback" not in node.log_path.read_text(), running.logs()


def smtp_send(client: RawClient, message_id: str) -> str:
    """Send one message to alice in a new session; return the reply to the end of data."""
    assert client.smtp_reply().startswith("220 ")
    client.transact("EHLO client.test", "250", smtp=True)
    body = (f"From: <sender@remote.test>\r\nTo: <{ALICE}>\r\nSubject: load\r\n"
            f"Message-ID: <{message_id}>\r\n\r\nBody of {message_id}\r\n").encode()
    reply = client.send_mail(body, "sender@remote.test", (ALICE,))
    client.send("QUIT")
    return reply


def pending_response(client: IMAPClient) -> str | None:
    """Return the next IMAP response if one has arrived, without waiting for it."""
    client.sock.settimeout(0.05)
    try:
        return client.response()
    except TimeoutError:
        return None
    finally:
        client.sock.settimeout(10)


def subscribers(channel: str) -> int:
    import redis

    return dict(redis.Redis.from_url(os.environ["REDIS_URL"]).pubsub_numsub(channel))[
        channel.encode()]


def test_a_message_delivered_through_node_a_reaches_an_idle_client_on_node_b(cluster, alice):
    a, b = cluster.nodes
    watcher = b.client("imap", IMAPClient)
    watcher.login()
    watcher.ok("SELECT INBOX")
    idle(watcher)
    wait_until(lambda: subscribers(cluster.channel) == 1, "node B to subscribe",
               details=cluster.logs)

    sender = a.client("smtp")
    assert smtp_send(sender, "a-to-b@remote.test").startswith("250 ")
    sender.close()
    # Polls are off (FOREVER): only node A's notice through Redis can wake node B.
    assert wait_until(lambda: pending_response(watcher), "node B to announce the message",
                      details=cluster.logs) == "* 1 EXISTS"
    assert done(watcher) == ([], "OK IDLE completed")


def test_a_pop3_session_on_node_a_locks_the_maildrop_against_node_b(cluster, alice):
    a, b = cluster.nodes

    def log_in(node: Node) -> tuple[RawClient, str]:
        client = node.client("pop3")
        assert client.line().startswith("+OK")
        client.transact(f"USER {ALICE}", "+OK")
        client.send(f"PASS {PASSWORD}")
        return client, client.line()

    first, reply = log_in(a)
    assert reply.startswith("+OK")
    second, reply = log_in(b)
    assert reply == "-ERR [IN-USE] Mailbox is locked by another POP3 session"
    second.close()

    first.transact("QUIT", "+OK")
    first.close()
    third, reply = log_in(b)
    assert reply.startswith("+OK")
    third.transact("QUIT", "+OK")


def test_killing_node_a_under_smtp_load_loses_no_acknowledged_message(cluster, alice):
    a, _ = cluster.nodes
    senders, per_sender = 4, 12
    acknowledged: list[tuple[str, bool]] = []  # (message id, sent after the kill)
    killed = threading.Event()
    lock = threading.Lock()

    def send_all(n: int) -> None:
        for i in range(per_sender):
            message_id = f"load-{n}-{i}@remote.test"
            try:
                client = RawClient(cluster.fronts["smtp"])
                try:
                    reply = smtp_send(client, message_id)
                finally:
                    client.close()
            except (OSError, AssertionError):
                continue  # not acknowledged: the sender keeps it and tries later
            if reply.startswith("250 "):
                with lock:
                    acknowledged.append((message_id, killed.is_set()))

    threads = [threading.Thread(target=send_all, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(acknowledged) >= senders, "the first messages to be accepted",
                   details=cluster.logs)
        a.kill()  # SIGKILL: no drain, no cleanup
        killed.set()
    finally:
        for thread in threads:
            thread.join(WAIT * 2)

    assert any(after for _, after in acknowledged), "node B took no mail after A died"
    stored = dict(Message.objects.filter(folder__mailbox=alice, folder__name="INBOX")
                  .values_list("message_id", "blob_id"))
    lost = [m for m, _ in acknowledged if f"<{m}>" not in stored]
    assert lost == [], cluster.logs()
    for message_id, _ in acknowledged:
        assert f"Body of {message_id}".encode() in blob_store().get(stored[f"<{message_id}>"])


def test_two_celery_workers_never_send_one_queued_message_twice(transactional_db, tmp_path):
    queue = f"two-nodes-{uuid.uuid4().hex}"
    count = 20
    with Sink() as sink:
        ids = []
        for n in range(count):
            raw = (f"From: <alice@example.test>\r\nTo: <r{n}@remote.test>\r\n"
                   f"Message-ID: <queued-{n}@example.test>\r\n\r\nQueued {n}\r\n").encode()
            ids.append(deliver(raw, "alice@example.test", [], [f"r{n}@remote.test"]).outbound_id)
        env = {**os.environ, "DATABASE_URL": database_url(), "BLOB_DIR": str(settings.BLOB_DIR),
               "SECRET_KEY": settings.SECRET_KEY, "MAIL_HOSTNAME": "worker.example.test",
               "OUTBOUND_TRANSPORTS": f"remote.test=127.0.0.1:{sink.port}",
               "DNS_RESOLVER": "127.0.0.1:1", "DATA_DIR": str(tmp_path / "worker")}
        workers = [_worker(env, name, queue, tmp_path / f"{name}.log") for name in ("w1", "w2")]
        try:
            for name, _ in workers:
                wait_until(lambda name=name: " ready." in _text(tmp_path / f"{name}.log"),
                           f"worker {name} to start",
                           details=lambda name=name: _text(tmp_path / f"{name}.log"))
            # Both workers are asked for every message, twice, as a sweep and a kick can.
            for _ in range(2):
                for outbound_id in ids:
                    app.send_task("mailcore.tasks.deliver_outbound", args=[[outbound_id]],
                                  queue=queue)
                app.send_task("mailcore.tasks.sweep_outbound", queue=queue)

            def all_sent() -> bool:
                return not OutboundRecipient.objects.filter(
                    message_id__in=ids, state=OutboundRecipient.State.QUEUED).exists()

            wait_until(all_sent, "both workers to send the queue", interval=0.2,
                       details=lambda: "".join(_text(tmp_path / f"{n}.log") for n in ("w1", "w2")))
        finally:
            for _, proc in workers:
                proc.terminate()
                proc.wait(30)
    sent = Counter(re.search(rb"Message-ID: <([^>]+)>", r.data)[1] for r in sink.handler.received)
    assert sent == Counter({f"queued-{n}@example.test".encode(): 1 for n in range(count)})
    assert OutboundMessage.objects.filter(pk__in=ids).count() == count
    logs = [_text(tmp_path / f"{n}.log") for n in ("w1", "w2")]
    assert all("deliver_outbound" in log for log in logs), "one worker did all the work"


def _worker(env: dict[str, str], name: str, queue: str, log: Path
            ) -> tuple[str, subprocess.Popen]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "panel", "worker",
             "--pool", "solo", "--loglevel", "INFO", "-n", f"{name}@%h", "-Q", queue,
             "--without-mingle", "--without-gossip", "--without-heartbeat"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    return name, proc


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
