"""SQLite writers of several processes queue on the lock file beside the database; durable
writes sync the WAL once the write lock is free (group commit)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from mailcore import dbpool
from tests.servers import ROOT

WRITES = 200
# Each process connects, says so, waits for the go file, then writes as fast as it can.
# SQLite's busy timeout is 0: any write that found the database locked would fail at once.
WRITER = """
import os, sys, time
import django
django.setup()
from django.db import connection
from mailcore import dbpool
connection.settings_dict["OPTIONS"]["timeout"] = 0
connection.ensure_connection()
print("ready", flush=True)
go, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
while not os.path.exists(go):
    time.sleep(0.001)
for n in range(count):
    with dbpool.writing(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO counted (tag, n) VALUES (%s, %s)", [tag, n])
        cursor.execute("UPDATE total SET n = n + 1")
"""


def test_writers_in_two_processes_both_succeed_without_database_is_locked(tmp_path: Path):
    database = tmp_path / "db.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE counted (tag TEXT, n INTEGER)")
        db.execute("CREATE TABLE total (n INTEGER)")
        db.execute("INSERT INTO total VALUES (0)")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DJANGO_SETTINGS_MODULE="panel.settings", DATA_DIR=str(tmp_path),
               DATABASE_URL=f"sqlite:///{database}")
    go = tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(go), tag, str(WRITES)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
               for tag in ("a", "b")]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
    go.touch()  # both start writing at once
    outputs = [writer.communicate(timeout=120)[0] for writer in writers]

    assert [writer.returncode for writer in writers] == [0, 0], outputs
    assert not any("database is locked" in output for output in outputs)
    with sqlite3.connect(database) as db:
        counted = db.execute("SELECT tag, count(*) FROM counted GROUP BY tag").fetchall()
        total = db.execute("SELECT n FROM total").fetchone()[0]
    assert sorted(counted) == [("a", WRITES), ("b", WRITES)]
    assert total == 2 * WRITES
    assert (tmp_path / "db.sqlite3-writer.lock").exists()


@pytest.mark.django_db(transaction=True)
def test_a_durable_write_syncs_the_wal_after_releasing_the_write_lock(monkeypatch):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock and WAL file")
    synced: list[tuple[str, bool]] = []

    def fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), dbpool._sqlite_writer.locked()))

    monkeypatch.setattr(dbpool.os, "fsync", fsync)
    with dbpool.writing(durable=False), connection.cursor() as cursor:
        cursor.execute("UPDATE django_migrations SET app = app WHERE id = 1")
    assert synced == []  # a flag change: a crash of the process may not lose it, power may

    with dbpool.writing(), connection.cursor() as cursor:
        cursor.execute("UPDATE django_migrations SET app = app WHERE id = 1")
    wal = f"{connection.settings_dict['NAME']}-wal"
    assert synced == [(os.path.realpath(wal), False)]
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 1  # NORMAL: the commit itself did not wait for the disk
