"""Webmail search in a big folder: milliseconds per page of results for the search box.

Fills one folder with `--messages` rows (default 50,000) whose text is kept for full-text
search, as delivery keeps it, then times `mailcore.webclient.listing.page` for a word in
a few messages, a word in every tenth, a word in none, and a sender. The rows are written
in bulk (the blobs themselves are not: on Postgres the index answers without them), into
the database DATABASE_URL names, under a domain of the run's own that is removed after.

    DATABASE_URL=postgres://.../yours DEBUG=1 python bench/webmail_search.py [--messages 50000]

On SQLite the search box reads blobs instead, which this does not write: run it on Postgres.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
WORDS = ["invoice", "meeting", "holiday", "report", "lunch", "budget", "project", "travel"]


def fill(count: int) -> tuple[object, str, str]:
    from django.db import transaction
    from django.utils import timezone

    from mailcore import directory
    from mailcore.models import Blob, Message, MessageText
    from mailcore.store.folders import find_folder

    run = secrets.token_hex(4)
    domain = f"bench-{run}.test"
    directory.add_domain(domain)
    box = directory.add_mailbox(f"alice@{domain}", secrets.token_urlsafe(16))
    inbox = find_folder(box.pk, "INBOX")
    now = timezone.now()
    for start in range(0, count, 5000):
        batch = range(start, min(start + 5000, count))
        keys = [f"{run}{i:056d}" for i in batch]  # 64 characters, as a SHA-256 key
        with transaction.atomic():
            Blob.objects.bulk_create([Blob(key=k, size=2000) for k in keys])
            MessageText.objects.bulk_create([MessageText(blob_id=k, text=_text(i))
                                             for k, i in zip(keys, batch, strict=True)])
            Message.objects.bulk_create([
                Message(folder=inbox, uid=i + 1, blob_id=k, size=2000, modseq=1,
                        internal_date=now - timedelta(minutes=count - i),
                        subject=f"Message {i}", from_addr=f"Sender {i % 50} <s{i % 50}@x.test>",
                        to_addrs=f"alice@{domain}")
                for k, i in zip(keys, batch, strict=True)])
    return inbox, domain, run


def _text(i: int) -> str:
    words = " ".join(WORDS[(i * 7 + n) % len(WORDS)] for n in range(40))
    rare = " zanzibar" if i % 5000 == 0 else ""
    tenth = " quarterly" if i % 10 == 0 else ""
    return f"Hello, this is message {i}. {words}{rare}{tenth}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
    import django

    django.setup()
    from django.db import connection

    from mailcore import directory
    from mailcore.models import Blob
    from mailcore.store import fulltext
    from mailcore.webclient import listing

    if not fulltext.enabled():
        sys.exit(f"bodies are indexed on Postgres only; this is {connection.vendor}")
    inbox, domain, run = fill(args.messages)
    try:
        print(f"{args.messages} messages in one folder ({connection.vendor})")
        for label, query in [("rare word", listing.Query(text="zanzibar")),
                             ("word in every tenth", listing.Query(text="quarterly")),
                             ("word in none", listing.Query(text="xylophone")),
                             ("sender", listing.Query(text="Sender 7 "))]:
            times = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                page = listing.page(inbox, query, size=50)
                times.append((time.perf_counter() - started) * 1000)
            print(f"  {label:<20} {statistics.median(times):8.1f} ms (median of "
                  f"{args.rounds}), {page.total} found")
    finally:
        directory.remove_domain(directory.get_domain(domain))
        Blob.objects.filter(key__startswith=run).delete()  # rows only: no files were written


if __name__ == "__main__":
    main()
