"""Sorting and threading figures on a big INBOX: the webmail's sorted pages, SORT, THREAD.

Run from the project folder (in-process, a throwaway SQLite data folder by default):

    python bench/sorting.py [--messages 50000] [--database-url postgres://USER@HOST/SCRATCH]

Fills one INBOX by bulk insert (varied senders, subjects with "Re:" and list tags,
sizes, dates, and reply chains in the thread columns), then times: the webmail's first
and a middle page sorted by date, sender, subject and size, both ways
(mailcore.webclient.listing.page, SQL on the indexed sort keys); the store's SORT for
each RFC 5256/5957 criterion (mailcore.store.sorting.sort); THREAD=ORDEREDSUBJECT and
THREAD=REFERENCES (mailcore.store.threading.thread); one message's conversation.
Target: a sorted webmail page of a 50,000-message INBOX in under a second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench@bench.test", "bench-password"
SENDERS = ["Alice Smith", "bob@remote.test", "Zoë Ångström", "carol", "Dave <d@x>", ""]


def _django(data_dir: Path, database_url: str | None) -> None:
    os.environ.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="panel.settings",
                      DEBUG="1")
    os.environ.pop("BLOB_DIR", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(PROJECT))
    import django

    django.setup()


def _timed(label: str, run, *args, **kwargs) -> object:
    began = time.perf_counter()
    result = run(*args, **kwargs)
    print(f"{label:46} {1000 * (time.perf_counter() - began):9.1f} ms")
    return result


def bench(count: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _django(Path(tmp), database_url)
        from datetime import UTC, datetime, timedelta

        from django.core.management import call_command

        from mailcore import directory
        from mailcore.message import sortkeys
        from mailcore.message.searchkeys import AllKey
        from mailcore.models import Blob, Folder, Message
        from mailcore.store import sorting, threading
        from mailcore.store.blobs import blob_store
        from mailcore.webclient import listing

        call_command("migrate", verbosity=0)
        directory.add_domain("bench.test")
        mailbox = directory.add_mailbox(USER, PASSWORD)
        folder = Folder.objects.get(mailbox=mailbox, name="INBOX")
        raw = b"From: sender@remote.test\r\nSubject: x\r\n\r\nbody\r\n"
        key = blob_store().put(raw)
        Blob.objects.create(key=key, size=len(raw))
        start = datetime(2024, 1, 1, tzinfo=UTC)

        def row(n: int) -> Message:
            subject = ["", "Re: ", "[list] Fwd: ", "RE: re: "][n % 4] + f"topic {n // 7}"
            sender = SENDERS[n % len(SENDERS)] + f" {n % 1000}"
            thread = n // 7 * 7
            refs = "" if n == thread else f"<{thread}@bench> <{n - 1}@bench>"
            return Message(
                folder=folder, uid=n, blob_id=key, size=500 + (n * 37) % 60000, modseq=n,
                internal_date=start + timedelta(minutes=10 * n),
                sent_date=start + timedelta(minutes=10 * n - n % 13),
                subject=subject, from_addr=sender, to_addrs=USER,
                message_id=f"<{n}@bench>", sort_subject=sortkeys.casemap(f"topic {n // 7}"),
                sort_from=sortkeys.casemap(sender.split()[0] if sender.strip() else ""),
                sort_display_from=sortkeys.casemap(sender),
                thread_refs=refs, thread_root=sortkeys.thread_root(f"<{n}@bench>", refs))

        began = time.perf_counter()
        Message.objects.bulk_create([row(n) for n in range(1, count + 1)], batch_size=2000)
        Folder.objects.filter(pk=folder.pk).update(uidnext=count + 1, highestmodseq=count)
        print(f"inserted {count} messages in {time.perf_counter() - began:.1f}s")
        middle = max(1, count // 100)
        for sort in sorting.PAGE_ORDERS:
            for descending in (False, True):
                for number in (1, middle):
                    _timed(f"webmail page {number} by {'-' if descending else ''}{sort}",
                           listing.page, folder, listing.Query(), sort, descending,
                           number, size=50)
        for criterion in sorting.CRITERIA:
            _timed(f"SORT ({criterion}) ALL", sorting.sort,
                   folder.pk, [sorting.Criterion(criterion)], AllKey(), count)
        for algorithm in threading.ALGORITHMS:
            found = _timed(f"THREAD {algorithm} ALL", threading.thread,
                           folder.pk, algorithm, AllKey(), count)
            print(f"{'':46} {len(found)} threads")
        _timed("conversation of one message", threading.conversation, folder.pk, count // 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--database-url", metavar="postgres://USER@HOST:PORT/NAME",
                        help="a scratch database (its tables are created and filled)")
    args = parser.parse_args()
    bench(args.messages, args.database_url)


if __name__ == "__main__":
    main()
