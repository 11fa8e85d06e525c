"""Django's file cache with add and incr made atomic across threads and processes.

Without Redis, mailcore's worker processes share login throttle counters through this
cache (panel/settings.py). Django's FileBasedCache does add and incr as a read, then a
write, which two processes can interleave, and its incr resets the entry's expiry to the
default timeout. Here both hold one exclusive flock on a file in the cache folder, and
incr keeps the expiry the counter was made with.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache


class LockedFileCache(FileBasedCache):
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._createdir()
        # flock excludes other open files too, so threads of one process wait as well.
        fd = os.open(os.path.join(self._dir, "counters.lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        with self._locked():
            return super().add(key, value, timeout, version)

    def incr(self, key, delta=1, version=None) -> int:
        with self._locked():
            fname = self._key_to_file(key, version)
            try:
                with open(fname, "rb") as f:
                    expiry = pickle.load(f)
                    value = pickle.loads(zlib.decompress(f.read()))
            except (FileNotFoundError, EOFError, zlib.error, pickle.UnpicklingError):
                raise ValueError(f"Key '{key}' not found") from None
            now = time.time()
            if expiry is not None and expiry < now:
                raise ValueError(f"Key '{key}' not found")
            new_value = value + delta
            self.set(key, new_value, None if expiry is None else expiry - now, version)
            return new_value
