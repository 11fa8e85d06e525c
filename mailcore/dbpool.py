"""A bounded pool of threads that run mailcore's database work off the event loop.

Each command's database work runs as one unit in a pool thread; every thread keeps its
own Django connection, checked before each unit (CONN_HEALTH_CHECKS), so one slow query
blocks one thread, never the whole server. Each mailcore worker process has its own pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections, transaction

T = TypeVar("T")

class Pool:
    """A fixed set of threads taking units of work from one queue, answering on the loop.

    Lighter than a ThreadPoolExecutor behind run_in_executor, which every IMAP command
    crosses at least once: no concurrent.futures.Future (and its Condition) per unit and
    no chaining of two futures; a unit's result goes straight to the asyncio future.
    Threads start as units arrive, up to `size`.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.waiting: list[bool] = []  # per thread, set by that thread alone: no lock needed
        self.lock = threading.Lock()

    def submit(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future,
               fn: Callable[[], object]) -> None:
        self.queue.put((loop, future, fn))
        if len(self.threads) < self.size and not any(self.waiting):
            with self.lock:
                if len(self.threads) < self.size:
                    number = len(self.threads)
                    self.waiting.append(False)
                    thread = threading.Thread(target=self._work, args=(number,), daemon=True,
                                              name=f"{self.name}_{number}")
                    self.threads.append(thread)
                    thread.start()

    def _work(self, number: int) -> None:
        take, waiting = self.queue.get, self.waiting
        while True:
            waiting[number] = True
            item = take()
            waiting[number] = False
            if item is None:
                return
            loop, future, fn = item
            if future is not None and future.cancelled():
                continue  # its task was cancelled while the unit waited: skip the work
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001  handed to the awaiting task
                _answer(loop, future, exc, failed=True)
            else:
                _answer(loop, future, result, failed=False)
            del item, loop, future, fn

    def run_in_threads(self, fn: Callable[[], object]) -> None:
        """Run fn once in every thread started, each taking exactly one (then stop them)."""
        barrier = threading.Barrier(len(self.threads) or 1)
        for _ in self.threads:
            self.queue.put((None, None, functools.partial(_at_barrier, fn, barrier)))

    def shutdown(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        self.threads, self.waiting = [], []


def _at_barrier(fn: Callable[[], object], barrier: threading.Barrier) -> None:
    fn()
    try:
        barrier.wait(timeout=10)
    except threading.BrokenBarrierError:
        pass


def _answer(loop: asyncio.AbstractEventLoop | None, future: asyncio.Future | None,
            value: object, failed: bool) -> None:
    if loop is None or future is None:
        return
    try:
        loop.call_soon_threadsafe(_settle, future, value, failed)
    except RuntimeError:  # the loop has closed: nobody is waiting any more
        pass


def _settle(future: asyncio.Future, value: object, failed: bool) -> None:
    if future.cancelled():
        return
    if failed:
        future.set_exception(value)
    else:
        future.set_result(value)


_pool: Pool | None = None


def pool() -> Pool:
    global _pool
    if _pool is None:
        _pool = Pool(settings.MAILCORE_DB_THREADS, "mailcore-db")
    return _pool


_CHECK_EVERY = 30.0  # seconds between connection health checks in one thread
_local = threading.local()


def _unit(fn: Callable[..., T], *args, **kwargs) -> T:
    # A health check costs a round trip (SELECT 1 on Postgres): do it every so often,
    # and after any database error, rather than before every unit of work.
    now = time.monotonic()
    if getattr(_local, "next_check", 0.0) <= now:
        close_old_connections()
        _local.next_check = now + _CHECK_EVERY
    try:
        return fn(*args, **kwargs)
    except DatabaseError:
        _local.next_check = 0.0
        raise


async def run(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run fn(*args, **kwargs) in a pool thread and return its result."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    pool().submit(loop, future, functools.partial(_unit, fn, *args, **kwargs))
    return await future


def shutdown() -> None:
    """Close every pool thread's database connection and let the threads go."""
    global _pool
    if _pool is None:
        return
    running, _pool = _pool, None
    # One closing unit per thread: each waits at the barrier, so no thread takes two.
    running.run_in_threads(connections.close_all)
    running.shutdown()


_sqlite_writer = threading.Lock()
_writer_file: tuple[int, str, int] | None = None  # (process id, path, descriptor)


def _writer_file_descriptor() -> int | None:
    """Return this process's descriptor of the lock file beside the SQLite database.

    Call with _sqlite_writer held. None for an in-memory database, which no other process
    can share. A process opens the file itself: flock belongs to an open file, so one
    inherited across a fork would be a lock the parent and child hold together.
    """
    global _writer_file
    name = str(connection.settings_dict["NAME"])
    if not name or name == ":memory:" or "mode=memory" in name:
        return None
    path = f"{name}-writer.lock"
    pid = os.getpid()
    if _writer_file is not None and _writer_file[:2] == (pid, path):
        return _writer_file[2]
    if _writer_file is not None:
        os.close(_writer_file[2])  # another database's, or the parent's copy after a fork
        _writer_file = None
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    _writer_file = (pid, path, fd)
    return fd


@contextlib.contextmanager
def _sqlite_processes_queue() -> Iterator[None]:
    """Hold the lock file's exclusive flock: writers of other processes wait in the kernel."""
    fd = _writer_file_descriptor()
    if fd is None:
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


_synchronous = threading.local()  # per thread: the SQLite connection set to NORMAL


def _normal_commits() -> None:
    """Make this thread's SQLite connection commit without syncing the WAL (NORMAL).

    A durable writing() syncs the WAL itself once the write lock is released
    (_sync_wal), so no writer waits behind another's fsync.
    """
    raw = connection.connection
    if getattr(_synchronous, "connection", None) == id(raw):
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous=NORMAL")
    _synchronous.connection = id(raw)


# Group commit of durable SQLite writes: each is numbered as it commits (under the write
# lock), and one fsync of the WAL file makes every commit before it durable; a writer
# whose commit a sync already covered returns at once.
_wal_sync = threading.Lock()
_committed = 0  # durable commits of this process, numbered in commit order
_synced = 0  # the highest of them known to be on disk


def _sync_wal(number: int) -> None:
    """Return once durable commit number `number` of this process is on disk."""
    global _synced
    if _synced >= number:
        return
    with _wal_sync:
        if _synced >= number:
            return  # another writer's sync, started after our commit, covered it
        upto = _committed
        name = str(connection.settings_dict["NAME"])
        try:
            fd = os.open(f"{name}-wal", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            # Checkpointed and removed by the last connection to close: the commit is
            # in the database file, which that checkpoint synced; sync it again anyway.
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _synced = upto


@contextlib.contextmanager
def writing(durable: bool = True) -> Iterator[None]:
    """Open a write transaction.

    durable=False is for changes a power cut may lose but a crash of the process may not
    (flags, expunges; as Dovecot, which does not fsync its index updates): the commit
    does not wait for the disk. SQLite commits without syncing the WAL (synchronous
    NORMAL; the next durable commit syncs it along), Postgres without waiting for its WAL
    flush (synchronous_commit off). A nested writing() follows the outer one.

    A durable SQLite write commits the same way, releases the write lock, then syncs the
    WAL file before returning (a group commit: one fsync covers every commit before it).
    Holding the lock through the fsync, as synchronous=FULL does, made every other
    writer (a STORE, an EXPUNGE, a delivery) wait a disk flush per APPEND.

    SQLite has one writer at a time, and a thread waiting for it sleeps in growing steps
    (up to 100 ms) even after the lock is free. Writers queue instead where a free lock
    is handed over at once: threads of this process on a Python lock, and the one thread
    of each process that holds it on an flock of a file beside the database (mailcore's
    worker processes, the web and the Celery worker), until the commit. Inside an open
    transaction (which on SQLite already holds the write lock: BEGIN IMMEDIATE) this is a
    plain savepoint.
    """
    if connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    if connection.vendor != "sqlite":
        with transaction.atomic():
            if not durable and connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            yield
        return
    global _committed
    with _sqlite_writer, _sqlite_processes_queue():
        connection.ensure_connection()
        _normal_commits()
        with transaction.atomic():
            yield
        _committed += 1
        number = _committed
    if durable and _in_file():
        _sync_wal(number)


def _in_file() -> bool:
    name = str(connection.settings_dict["NAME"])
    return bool(name) and name != ":memory:" and "mode=memory" not in name
