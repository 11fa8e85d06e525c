"""A bounded pool of threads that run mailcore's database work off the event loop.

Each command's database work runs as one unit in a pool thread; every thread keeps its
own Django connection, checked before each unit (CONN_HEALTH_CHECKS), so one slow query
blocks one thread, never the whole server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Open a write transaction.

    SQLite has one writer at a time, and a thread waiting for it sleeps in growing steps
    (up to 100 ms) even after the lock is free; threads of this process queue on a Python
    lock instead, which hands over at once. Inside an open transaction (which on SQLite
    already holds the write lock: BEGIN IMMEDIATE) this is a plain savepoint.
    """
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    with _sqlite_writer, transaction.atomic():
        yield
