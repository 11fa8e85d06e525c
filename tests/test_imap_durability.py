"""What IMAP acknowledged survives kill -9 of the mailcore process.

APPEND's OK means the message is on disk (synced); flag changes and expunges are
committed without waiting for the disk, as Dovecot's index updates are, so they may be
lost to a power cut but never to a crash of the process: the kernel still has them.
"""

from __future__ import annotations

import signal
from pathlib import Path

from mailcore.models import Folder, Message
from mailcore.store.delivery import deliver
from tests.imap_client import IMAPClient, close_all, message
from tests.servers import ServerProcess

ROUNDS = 40


def test_store_expunge_and_append_acknowledged_before_kill_9_survive(server_process, alice,
                                                                    tmp_path: Path):
    for n in range(1, ROUNDS + 1):
        deliver(message(n), "s@remote.test", [alice.pk])
    client = IMAPClient(server_process.port("imap"))
    client.login()
    client.ok("SELECT INBOX")
    appended = []
    for n in range(1, ROUNDS + 1):
        client.ok(f"UID STORE {n} +FLAGS.SILENT (\\Seen $Done{n})")
        if n % 4 == 0:
            client.ok(f"UID STORE {n} +FLAGS.SILENT (\\Deleted)")
            client.ok(f"UID EXPUNGE {n}")
        data = message(100 + n)
        untagged, done = client.run(b"APPEND Drafts (\\Draft) {%d+}\r\n" % len(data) + data)
        assert done.startswith("OK [APPENDUID "), done
        appended.append(data)
    server_process.kill()  # SIGKILL, right after the last OK
    assert server_process.proc.returncode == -signal.SIGKILL

    restarted = ServerProcess(tmp_path / "mailcore", ports=server_process.ports).start()
    try:
        inbox = {m.uid: m for m in Message.objects.filter(
            folder__mailbox=alice, folder__name="INBOX")}
        assert sorted(inbox) == [n for n in range(1, ROUNDS + 1) if n % 4]
        for uid, row in inbox.items():
            assert row.seen and row.keywords == [f"$Done{uid}"], uid
        drafts = Folder.objects.get(mailbox=alice, name="Drafts")
        rows = list(Message.objects.filter(folder=drafts).order_by("uid"))
        assert len(rows) == ROUNDS and all(row.draft for row in rows)
        fresh = IMAPClient(restarted.port("imap"))
        fresh.login()
        fresh.ok("SELECT Drafts")
        for n, data in enumerate(appended, 1):
            [untagged] = fresh.ok(f"FETCH {n} BODY.PEEK[]")
            assert untagged == f"* {n} FETCH (BODY[] {{{len(data)}}}\r\n{data.decode()})"
    finally:
        close_all()
        assert restarted.terminate() == 0
