"""Two Celery workers on one queue never send one queued message twice.

The outbound queue's leases are rows in the database, skipped by a worker while another
holds them: two worker processes, each asked for every message twice (a kick and a sweep,
as happens when several nodes run workers), send each message to the loopback sink once.
They share a broker, so this runs on Postgres with Redis (CELERY_BROKER_URL) only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from mailcore.models import OutboundMessage, OutboundRecipient
from mailcore.store.delivery import deliver
from panel.celery import app
from tests.servers import ROOT, database_url
from tests.sink import Sink
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                       reason="worker processes share the test database: SQLite's test "
                              "database is this process's own; set DATABASE_URL to Postgres"),
    pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"),
                       reason="two worker processes need a shared broker: set "
                              "CELERY_BROKER_URL to Redis"),
]


def test_two_celery_workers_never_send_one_queued_message_twice(transactional_db, tmp_path):
    _run_two_workers(tmp_path, "deliver_outbound", {})


def test_two_celery_workers_draining_at_once_send_each_message_once(transactional_db, tmp_path):
    # Batches of 3: each full batch hands the rest on, so both workers claim side by side.
    _run_two_workers(tmp_path, "drain_outbound", {"OUTBOUND_DRAIN_BATCH": "3"})


def _run_two_workers(tmp_path: Path, task: str, settings_env: dict[str, str]) -> None:
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
               "DNS_RESOLVER": "127.0.0.1:1", "DATA_DIR": str(tmp_path / "worker"),
               **settings_env}
        workers = [_worker(env, name, queue, tmp_path / f"{name}.log") for name in ("w1", "w2")]
        try:
            for name, _ in workers:
                wait_until(lambda name=name: " ready." in _text(tmp_path / f"{name}.log"),
                           f"worker {name} to start",
                           details=lambda name=name: _text(tmp_path / f"{name}.log"))
            # Both workers are asked for every message, twice, as a sweep and a kick can.
            for _ in range(2):
                for outbound_id in ids:
                    if task == "deliver_outbound":
                        app.send_task("mailcore.tasks.deliver_outbound", args=[[outbound_id]],
                                      queue=queue)
                    else:
                        app.send_task("mailcore.tasks.drain_outbound", queue=queue)
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
    assert all(task in log for log in logs), "one worker did all the work"


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
