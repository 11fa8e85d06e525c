"""Moving every blob from one store to another (files <-> S3): copy, verify, resume.

The database says which blobs exist (a Blob row per key, with its size); each is copied
unless the target already holds an object of that size, and each copy is read back from
the target and checked, size and SHA-256 (the key), before the next. Run it again after an
interruption, or after stopping the servers to catch up with mail that arrived meanwhile:
what is already there is not copied again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from mailcore.models import Blob


class BlobMismatch(Exception):
    """A blob's bytes do not match its key or size."""


@dataclass
class Tally:
    copied: int = 0
    present: int = 0
    copied_bytes: int = 0
    missing: list[str] = field(default_factory=list)


def recorded_blobs() -> Iterator[tuple[str, int]]:
    """Yield (key, size) of every blob the database knows, in key order."""
    yield from Blob.objects.order_by("key").values_list("key", "size").iterator(2000)


def totals() -> tuple[int, int]:
    """Return how many blobs the database knows and their bytes."""
    from django.db.models import Count, Sum

    found = Blob.objects.aggregate(count=Count("key"), bytes=Sum("size"))
    return found["count"], found["bytes"] or 0


def move(source, target, key: str, size: int, tally: Tally, verify_present: bool = False
         ) -> None:
    """Copy one blob from source to target unless there already; verify what was written."""
    if target.size(key) == size:
        if verify_present:
            check(target.read(key), key, size, "the target")
        tally.present += 1
        return
    try:
        data = source.read(key)
    except FileNotFoundError:
        tally.missing.append(key)
        return
    check(data, key, size, "the source")
    target.write(key, data)
    check(target.read(key), key, size, "the target")
    tally.copied += 1
    tally.copied_bytes += size


def check(data: bytes, key: str, size: int, where: str) -> None:
    if len(data) != size or hashlib.sha256(data).hexdigest() != key:
        raise BlobMismatch(f"blob {key} in {where} does not match its key and size "
                           f"({len(data)} bytes, {size} expected)")
