"""Waiting in tests: poll a condition until it holds, or fail the test saying what it awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")
WAIT = 30.0  # seconds a step may take on a loaded machine before the test gives up


def wait_until(condition: Callable[[], T], what: str, timeout: float = WAIT, *,
               interval: float = 0.02, details: Callable[[], str] | None = None) -> T:
    """Call condition until it returns something true, and return that.

    After timeout seconds fail the test, naming what it waited for, followed by details()
    (a server's log, say).
    """
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}"
                        + (details() if details else ""))
        time.sleep(interval)
    return result


async def await_until(condition: Callable[[], object], timeout: float = 10) -> None:
    """Poll condition from a running event loop (without blocking it) until it is true."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
