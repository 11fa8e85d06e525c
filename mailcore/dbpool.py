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
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections, transaction

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=settings.MAILCORE_DB_THREADS, thread_name_prefix="mailcore-db",
        )
    return _executor


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
    return await loop.run_in_executor(executor(), functools.partial(_unit, fn, *args, **kwargs))


def shutdown() -> None:
    """Close every pool thread's database connection and let the threads go."""
    global _executor
    if _executor is None:
        return
    pool, _executor = _executor, None
    # One closing task per thread: each waits at the barrier, so no thread takes two.
    barrier = threading.Barrier(pool._max_workers)  # noqa: SLF001

    def close() -> None:
        connections.close_all()
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass

    for _ in range(pool._max_workers):  # noqa: SLF001
        pool.submit(close)
    pool.shutdown(wait=True)


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


_synchronous = threading.local()  # per thread: (its SQLite connection, durable or not)


def _commit_mode(durable: bool) -> None:
    """Make the coming commit wait for the disk, or not (SQLite; outside a transaction)."""
    raw = connection.connection
    if getattr(_synchronous, "state", None) == (id(raw), durable):
        return
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    _synchronous.state = (id(raw), durable)


@contextlib.contextmanager
def writing(durable: bool = True) -> Iterator[None]:
    """Open a write transaction.

    durable=False is for changes a power cut may lose but a crash of the process may not
    (flags, expunges; as Dovecot, which does not fsync its index updates): the commit
    does not wait for the disk. SQLite commits without syncing the WAL (synchronous
    NORMAL; the next durable commit syncs it along), Postgres without waiting for its WAL
    flush (synchronous_commit off). A nested writing() follows the outer one.

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
    with _sqlite_writer, _sqlite_processes_queue():
        connection.ensure_connection()
        _commit_mode(durable)
        with transaction.atomic():
            yield
