"""IMAP figures: SEARCH on a large folder, and the memory of many idle IDLE sessions.

    python bench/imap.py search [--messages 50000]
    python bench/imap.py idle [--connections 1000]

`search` bulk-inserts a folder into a throwaway SQLite database and times the store's
search (one SQL query for cached columns; blobs only for the text keys' candidates).
`idle` runs `manage.py mailcore` (IMAP only) on a throwaway data folder, opens that many
logged-in sessions sitting in IDLE on INBOX, and reports the server's resident memory.
Target: 1,000 idle IDLE sessions under 200 MB for the whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench@bench.test", "bench-password"
PROGRAMS = [
    "UNSEEN", "FLAGGED UNSEEN", "SUBJECT 4711", "FROM sender", "LARGER 40000",
    "SINCE 1-Jun-2024 BEFORE 1-Jul-2024", "OR FLAGGED KEYWORD $Work", "NOT SEEN SMALLER 2000",
    "UID 1000:2000 SEEN", "FLAGGED BODY needle", "HEADER X-Mailer bench FLAGGED",
]


def _django(data_dir: Path) -> None:
    os.environ.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="panel.settings")
    for name in ("DATABASE_URL", "BLOB_DIR"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(PROJECT))
    import django

    django.setup()


def bench_search(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _django(Path(tmp))
        from datetime import UTC, datetime, timedelta

        from django.core.management import call_command

        from mailcore import directory
        from mailcore.imap.parser import parse_command
        from mailcore.models import Blob, Folder, Message
        from mailcore.store import messages
        from mailcore.store import search as store_search
        from mailcore.store.blobs import blob_store

        call_command("migrate", verbosity=0)
        directory.add_domain("bench.test")
        mailbox = directory.add_mailbox(USER, PASSWORD)
        folder = Folder.objects.get(mailbox=mailbox, name="INBOX")
        raw = b"From: sender@remote.test\r\nX-Mailer: bench\r\nSubject: x\r\n\r\nneedle\r\n"
        key = blob_store().put(raw)
        Blob.objects.create(key=key, size=len(raw))
        start = datetime(2024, 1, 1, tzinfo=UTC)
        began = time.perf_counter()
        Message.objects.bulk_create([
            Message(folder=folder, uid=n, blob_id=key, size=500 + (n * 37) % 60000, modseq=n,
                    internal_date=start + timedelta(minutes=10 * n), seen=n % 3 != 0,
                    flagged=n % 97 == 0, subject=f"message {n}", from_addr="sender@remote.test",
                    to_addrs=USER, keywords=["$Work"] if n % 500 == 0 else [])
            for n in range(1, count + 1)], batch_size=2000)
        Folder.objects.filter(pk=folder.pk).update(uidnext=count + 1, highestmodseq=count)
        print(f"inserted {count} messages in {time.perf_counter() - began:.1f}s")
        began = time.perf_counter()
        opened = messages.open_folder(folder.pk)
        print(f"{'SELECT (open_folder)':40} {1000 * (time.perf_counter() - began):8.1f} ms"
              f"  {len(opened.uids)} UIDs, {opened.uids.itemsize * len(opened.uids)} octets")
        for program in PROGRAMS:
            key_tree = parse_command(f"a SEARCH {program}\r\n".encode()).args.key
            began = time.perf_counter()
            found = store_search.search(folder.pk, key_tree, count)
            took = 1000 * (time.perf_counter() - began)
            print(f"{'SEARCH ' + program:40} {took:8.1f} ms  {len(found)} found")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _idle_session(port: int, ready: asyncio.Event, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    for line in (f'a LOGIN {USER} "{PASSWORD}"', "b SELECT INBOX", "c IDLE"):
        writer.write(line.encode() + b"\r\n")
        while True:
            reply = await reader.readline()
            if reply[:2] in (b"a ", b"b ", b"+ "):
                break
    ready.set()
    await stop.wait()
    writer.write(b"DONE\r\nd LOGOUT\r\n")
    await writer.drain()
    writer.close()


async def _open_sessions(port: int, pid: int, connections: int) -> None:
    stop = asyncio.Event()
    first = asyncio.Event()
    warm = asyncio.create_task(_idle_session(port, first, stop))
    await first.wait()
    before = _rss_kib(pid)
    events = [asyncio.Event() for _ in range(connections)]
    tasks = []
    began = time.perf_counter()
    for event in events:
        tasks.append(asyncio.create_task(_idle_session(port, event, stop)))
        if len(tasks) % 50 == 0:
            await asyncio.gather(*(e.wait() for e in events[len(tasks) - 50:len(tasks)]))
    await asyncio.gather(*(e.wait() for e in events))
    took = time.perf_counter() - began
    await asyncio.sleep(2)
    after = _rss_kib(pid)
    print(f"{connections} sessions logged in, selected and idling in {took:.1f}s")
    print(f"server RSS: {before / 1024:.1f} MB with one session, {after / 1024:.1f} MB with "
          f"{connections + 1}: {(after - before) / connections:.1f} KiB a session")
    stop.set()
    await asyncio.gather(warm, *tasks)


def bench_idle(connections: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BLOB_DIR")}
        env.update(DATA_DIR=tmp, DJANGO_SETTINGS_MODULE="panel.settings", LOG_LEVEL="WARNING",
                   IMAP_PORT=str(port), MAIL_BIND_ADDRESS="127.0.0.1", DEBUG="0",
                   PLAINTEXT_AUTH="loopback", AUTH_FAILURE_DELAY="0", SHUTDOWN_GRACE="2",
                   **dict.fromkeys(("SMTP_PORT", "SUBMISSION_PORT", "SUBMISSIONS_PORT",
                                    "POP3_PORT", "POP3S_PORT", "IMAPS_PORT"), "0"))
        manage = [sys.executable, str(PROJECT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([*manage, "shell", "-c",
                        "from mailcore import directory; directory.add_domain('bench.test'); "
                        f"directory.add_mailbox({USER!r}, {PASSWORD!r})"], env=env, check=True)
        log = Path(tmp) / "mailcore.log"
        with log.open("wb") as out:
            server = subprocess.Popen([*manage, "mailcore"], env=env, stdout=out,
                                      stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError(log.read_text()) from None
                    time.sleep(0.2)
            asyncio.run(_open_sessions(port, server.pid, connections))
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    search = sub.add_parser("search")
    search.add_argument("--messages", type=int, default=50_000)
    idle = sub.add_parser("idle")
    idle.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    if args.what == "search":
        bench_search(args.messages)
    else:
        bench_idle(args.connections)


if __name__ == "__main__":
    main()
