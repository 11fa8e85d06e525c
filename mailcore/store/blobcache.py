"""A local read cache of object-store blobs: files on disk, size-bounded, least recently read out.

Blobs never change (the key is the SHA-256 of the content), so an entry is never stale;
a cached file is checked against its key when read, so one torn by a crash is a miss, not
a wrong message. The processes of one machine share the folder: each keeps a running
count of what it added and, when that count passes the bound, counts the folder again
and removes the files read longest ago down to nine tenths of it. Reads mark a file by
its modification time, which (unlike the access time) no mount option turns off.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path


class BlobCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._counted: int | None = None  # bytes in the folder as last counted, plus adds

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> bytes | None:
        """Return a cached blob, or None."""
        path = self._path(key)
        try:
            with open(path, "rb", buffering=0) as fh:
                data = fh.readall()
            os.utime(path)
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != key:
            path.unlink(missing_ok=True)
            return None
        return data

    def add(self, key: str, data: bytes) -> None:
        """Keep a copy of a blob just read; one bigger than an eighth of the cache is not kept."""
        if len(data) > self.max_bytes // 8:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)  # no fsync: a cache may lose what a crash interrupts
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            if self._counted is None:
                self._counted = self._size()
            else:
                self._counted += len(data)
            if self._counted > self.max_bytes:
                self._counted = self._evict(self.max_bytes * 9 // 10)

    def discard(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _entries(self) -> list[tuple[float, int, Path]]:
        found = []
        for path in self.root.glob("*/*"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found.append((stat.st_mtime, stat.st_size, path))
        return found

    def _size(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _evict(self, target: int) -> int:
        """Remove the least recently read files until at most target bytes remain."""
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= target:
                break
            path.unlink(missing_ok=True)
            total -= size
        return total
