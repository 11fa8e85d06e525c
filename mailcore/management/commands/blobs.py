"""The `blobs` command: move every blob between the file store and S3, and collect orphans."""

from __future__ import annotations

import time
from typing import Any, TextIO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailcore.management.cli import format_size
from mailcore.store import blobmove
from mailcore.store.blobs import blob_store, collect_orphans, open_store


class Command(BaseCommand):
    help = (
        "Move every blob (raw message) from one store to another, or collect orphans. "
        "A store is s3://bucket/prefix (BLOB_S3_* and AWS_* settings) or a folder; "
        "'files' is BLOB_DIR."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", metavar="{init,migrate,collect}",
                                      required=True)
        verbs.add_parser("init", help="Create BLOB_STORE's bucket if it does not exist.")
        migrate = verbs.add_parser(
            "migrate", help="Copy every blob to another store, verifying each; resumable.")
        migrate.add_argument("--to", required=True, dest="target",
                             help="s3://bucket/prefix, a folder, or 'files' (BLOB_DIR).")
        migrate.add_argument("--from", dest="source", default=None,
                             help="Where the blobs are now (default: BLOB_STORE).")
        migrate.add_argument("--verify-present", action="store_true",
                             help="Also read back and check blobs the target already has.")
        collect = verbs.add_parser("collect", help="Delete blobs nothing points at.")
        collect.add_argument("--grace", type=float, default=3600,
                             help="Seconds a blob is left alone after it was stored.")

    def handle(self, *args: Any, verb: str, **options: Any) -> None:
        getattr(self, f"handle_{verb}")(**options)

    def handle_migrate(self, target: str, source: str | None, verify_present: bool,
                       **options: Any) -> None:
        source = settings.BLOB_STORE if source is None else source
        if _name(source) == _name(target):
            raise CommandError("the source and the target are the same store")
        from_store, to_store = open_store(_location(source)), open_store(_location(target))
        count, total = blobmove.totals()
        tally = blobmove.Tally()
        bar = Progress(self.stderr._out, count, total)
        try:
            for done, (key, size) in enumerate(blobmove.recorded_blobs(), 1):
                blobmove.move(from_store, to_store, key, size, tally, verify_present)
                bar.show(done, size)
        except (blobmove.BlobMismatch, OSError) as exc:
            bar.end()
            raise CommandError(f"{exc}; nothing was lost, run the command again") from exc
        bar.end()
        self.stdout.write(
            f"Copied {tally.copied} blobs ({format_size(tally.copied_bytes)}), "
            f"{tally.present} were already there, to {_name(target)}.")
        if tally.missing:
            shown = ", ".join(tally.missing[:5])
            raise CommandError(f"{len(tally.missing)} blobs are missing from the source: "
                               f"{shown}{' ...' if len(tally.missing) > 5 else ''}")
        self.stdout.write(f"To use it: {_setting(target)}.")

    def handle_init(self, **options: Any) -> None:
        store = blob_store()
        if not hasattr(store, "create_bucket"):
            self.stdout.write(f"Blobs are files in {settings.BLOB_DIR}: nothing to create.")
            return
        try:
            created = store.create_bucket()
        except OSError as exc:
            raise CommandError(str(exc)) from exc
        bucket = store.location.bucket
        self.stdout.write(f"Created bucket {bucket}." if created else f"Bucket {bucket} exists.")

    def handle_collect(self, grace: float, **options: Any) -> None:
        self.stdout.write(f"Removed {collect_orphans(grace)} orphan blobs.")


def _location(text: str) -> str:
    """Return what open_store() takes: s3://..., a folder, or "" for BLOB_DIR."""
    return "" if text in ("", "files") else text


def _name(text: str) -> str:
    location = _location(text)
    return location if location.startswith("s3://") else str(location or settings.BLOB_DIR)


def _setting(text: str) -> str:
    location = _location(text)
    if location.startswith("s3://"):
        return f"BLOB_STORE={location}"
    return f"BLOB_STORE unset, BLOB_DIR={_name(text)}"


class Progress:
    """A progress bar on a terminal (redrawn in place), or a line every 5% elsewhere."""

    WIDTH = 30

    def __init__(self, out: TextIO, count: int, total_bytes: int) -> None:
        self.out, self.count, self.total_bytes = out, max(count, 1), max(total_bytes, 1)
        self.bytes = 0
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_step = -1

    def show(self, done: int, size: int) -> None:
        self.bytes += size
        fraction = done / self.count
        step = int(fraction * 20)
        if not self.tty and step == self._last_step and done != self.count:
            return
        self._last_step = step
        filled = int(fraction * self.WIDTH)
        line = (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{self.count} blobs, "
                f"{format_size(self.bytes)}/{format_size(self.total_bytes)}, "
                f"{time.monotonic() - self.started:.0f}s")
        self.out.write(f"\r{line}" if self.tty else f"{line}\n")
        self.out.flush()

    def end(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()

