"""Change notification: every session of a mailbox learns promptly that something changed.

A change committed in this process wakes its waiters at once. Changes made by other
processes (another mailcore, the worker, the web) reach a process with waiters two ways:

- With Redis (`REDIS_URL`), every process publishes the changed mailbox's id once its
  transaction commits, on one channel per installation (`MAILCORE_CHANGE_CHANNEL`, by
  default named after the database), and a process subscribes while it has waiters.
  Publishing never fails a change: with Redis down it logs a warning and the poll finds it.
- One cheap poll per process of the watched mailboxes' folder counters, every
  `MAILCORE_CHANGE_POLL` seconds. Pub/sub drops what is published while a subscriber
  reconnects, so the poll keeps running beside a healthy subscription as the backstop,
  at the slower `MAILCORE_CHANGE_POLL_SUBSCRIBED` pace; it is back at full pace the
  moment the subscription is lost.

The worker processes of one mailcore (MAILCORE_PROCESSES) also tell each other of their
commits directly, without Redis (siblings.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections import defaultdict

import redis
import redis.asyncio
from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count, Max, Sum
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from mailcore import dbpool, siblings
from mailcore.models import Folder

log = logging.getLogger("mailcore.events")

# A dead Redis must not stall a delivery: publishing waits this long to connect and as
# long for the answer, and after a failure leaves Redis alone for a while (the poll finds
# those changes meanwhile).
PUBLISH_TIMEOUT = 0.5
PUBLISH_PAUSE = 10.0
# The subscriber pings Redis after this many quiet seconds and gives the connection up
# when the answer does not come within as many again (a half-open TCP connection is
# otherwise only noticed after minutes).
HEARTBEAT = 5.0
RESUBSCRIBE_DELAYS = (0.5, 30.0)  # first and longest wait before subscribing again

# Who published: a process ignores its own messages (it woke its sessions at commit).
_origin = uuid.uuid4().hex


def channel() -> str:
    """Return the installation's change channel."""
    name = connections["default"].settings_dict["NAME"]
    return settings.MAILCORE_CHANGE_CHANNEL or f"mailcore:changes:{name}"


class Watch:
    """What one session hears from the hub: that its mailbox changed, and where if known.

    A change committed in this process names its folder and the modseq it reached; one
    found by the poll or heard from another process does not (unknown). A session that
    made a change itself knows of it already: covered() lets it skip asking the store.
    """

    __slots__ = ("event", "unknown", "folders")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.unknown = False
        self.folders: dict[int, int] = {}  # folder id -> highest modseq committed

    def note(self, folder_id: int | None, modseq: int | None) -> None:
        if folder_id is None or modseq is None:
            self.unknown = True
        elif modseq > self.folders.get(folder_id, 0):
            self.folders[folder_id] = modseq
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def covered(self, folder_id: int, modseq: int) -> bool:
        """Tell whether a view of folder_id up to modseq already holds every change noted."""
        return not self.unknown and self.folders.get(folder_id, 0) <= modseq

    def clear(self) -> None:
        self.event.clear()
        self.unknown = False
        self.folders.clear()

    async def wait(self) -> None:
        await self.event.wait()


class ChangeHub:
    """Per-process registry of sessions waiting for changes to a mailbox."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiters: dict[int, set[Watch]] = defaultdict(set)
        self.seen: dict[int, tuple] = {}
        self.poller: asyncio.Task | None = None
        self.subscriber: asyncio.Task | None = None
        self.subscribed = False  # Redis has confirmed the subscription, and it is up

    def watch(self, mailbox_id: int) -> Watch:
        """Return a watch told whenever the mailbox changes (call unwatch when done)."""
        self.loop = asyncio.get_running_loop()
        event = Watch()
        self.waiters[mailbox_id].add(event)
        if not self._alive(self.poller):
            self.poller = self.loop.create_task(self._poll(), name="change poll")
        if settings.REDIS_URL and not self._alive(self.subscriber):
            self.subscriber = self.loop.create_task(self._subscribe(), name="change subscriber")
        return event

    def unwatch(self, mailbox_id: int, event: Watch) -> None:
        waiters = self.waiters.get(mailbox_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self.waiters[mailbox_id]
                self.seen.pop(mailbox_id, None)

    def wake(self, mailbox_id: int, folder_id: int | None = None,
             modseq: int | None = None) -> None:
        """Wake every waiter of a mailbox (telling where, if known); safe from any thread."""
        if self.loop is None or self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self._wake, mailbox_id, folder_id, modseq)
        except RuntimeError:  # the loop stopped meanwhile
            pass

    async def close(self) -> None:
        """Stop polling and subscribing (at shutdown); the next watch starts them again."""
        loop = asyncio.get_running_loop()
        tasks = [task for task in (self.poller, self.subscriber)
                 if task is not None and not task.done() and task.get_loop() is loop]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.subscribed = False

    def _alive(self, task: asyncio.Task | None) -> bool:
        # A task of another loop (a server restarted in the same process) no longer runs.
        return task is not None and not task.done() and task.get_loop() is self.loop

    def _wake(self, mailbox_id: int, folder_id: int | None = None,
              modseq: int | None = None) -> None:
        for watch in self.waiters.get(mailbox_id, ()):
            watch.note(folder_id, modseq)

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        due = 0.0  # while subscribed, when the backstop poll is next due
        while self.waiters:
            await asyncio.sleep(settings.MAILCORE_CHANGE_POLL)
            ids = list(self.waiters)
            if not ids:
                break
            if self.subscribed and loop.time() < due:
                continue
            due = loop.time() + settings.MAILCORE_CHANGE_POLL_SUBSCRIBED
            try:
                states = await dbpool.run(_folder_states, ids)
            except Exception:
                log.warning("change poll failed", exc_info=True)
                continue
            for mailbox_id in ids:
                state = states.get(mailbox_id, ())
                previous = self.seen.get(mailbox_id)
                self.seen[mailbox_id] = state
                # A mailbox's first look wakes its waiters too: another process may have
                # committed between the session's own look (SELECT) and this one, and
                # nothing else would tell of it. A woken session asks the store, once.
                if previous != state:
                    self._wake(mailbox_id)

    async def _subscribe(self) -> None:
        delay = RESUBSCRIBE_DELAYS[0]
        # No await between the last look at the waiters and returning, so a watch() that
        # finds this task still running can rely on it to serve the new waiter.
        while self.waiters:
            try:
                await self._listen()
            except (redis.RedisError, OSError) as exc:
                if self.subscribed:
                    delay = RESUBSCRIBE_DELAYS[0]
                log.warning("change subscription to Redis lost (%s); retrying in %.1fs",
                            str(exc) or type(exc).__name__, delay)
            except Exception:
                log.exception("change subscription failed; retrying in %.1fs", delay)
            else:
                continue
            finally:
                self.subscribed = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESUBSCRIBE_DELAYS[1])

    async def _listen(self) -> None:
        """Subscribe and wake the published mailboxes' waiters until no one waits."""
        client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=HEARTBEAT, socket_timeout=HEARTBEAT,
            socket_keepalive=True, retry=AsyncRetry(NoBackoff(), 0),
            client_name=f"mailcore-changes-{_origin}",
        )
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel())
            loop = asyncio.get_running_loop()
            heard, pinged = loop.time(), False
            while self.waiters:
                message = await pubsub.get_message(timeout=1.0)
                now = loop.time()
                if message is None:
                    if now - heard < HEARTBEAT:
                        continue
                    if pinged:
                        raise redis.ConnectionError("no answer to PING")
                    await pubsub.ping()
                    heard, pinged = now, True
                    continue
                heard, pinged = now, False
                if message["type"] == "subscribe":
                    self.subscribed = True
                elif message["type"] == "message":
                    self._published(message["data"])
        finally:
            with contextlib.suppress(redis.RedisError, OSError):
                await pubsub.aclose()
                await client.aclose()

    def _published(self, data: bytes) -> None:
        try:
            mailbox, origin = data.decode().split(" ", 1)
            mailbox_id = int(mailbox)
        except (UnicodeDecodeError, ValueError):
            log.warning("ignoring a malformed change message %r", data[:100])
            return
        if origin != _origin:
            self._wake(mailbox_id)


def _folder_states(mailbox_ids: list[int]) -> dict[int, tuple]:
    rows = (Folder.objects.filter(mailbox_id__in=mailbox_ids).values("mailbox_id")
            .annotate(n=Count("id"), modseq=Sum("highestmodseq"), uid=Sum("uidnext"),
                      top=Max("id")))
    return {r["mailbox_id"]: (r["n"], r["modseq"], r["uid"], r["top"]) for r in rows}


class Publisher:
    """Publish changes on Redis through one client per process, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.url = ""
        self.client: redis.Redis | None = None
        self.paused_until = 0.0

    def publish(self, mailbox_id: int) -> None:
        """Publish a change if Redis is configured; never raise."""
        url = settings.REDIS_URL
        if not url:
            return
        with self.lock:
            if url != self.url or self.client is None:
                self.url, self.paused_until = url, 0.0
                self.client = redis.Redis.from_url(
                    url, socket_connect_timeout=PUBLISH_TIMEOUT, socket_timeout=PUBLISH_TIMEOUT,
                    retry=Retry(NoBackoff(), 0),
                )
            if time.monotonic() < self.paused_until:
                return
            client = self.client
        try:
            client.publish(channel(), f"{mailbox_id} {_origin}")
        except Exception as exc:  # the change is committed; the poll will find it
            with self.lock:
                self.paused_until = time.monotonic() + PUBLISH_PAUSE
            log.warning("could not publish a change to Redis (%s); other processes will "
                        "find it by polling", str(exc) or type(exc).__name__)


hub = ChangeHub()
publisher = Publisher()


def _forked() -> None:
    # A forked child (a Celery pool process) is a publisher of its own.
    global _origin, publisher
    _origin = uuid.uuid4().hex
    publisher = Publisher()


os.register_at_fork(after_in_child=_forked)


def _committed(mailbox_id: int, folder_id: int | None, modseq: int | None) -> None:
    hub.wake(mailbox_id, folder_id, modseq)
    siblings.tell(mailbox_id)  # the other workers of this mailcore, if any (siblings.py)
    publisher.publish(mailbox_id)


def changed(mailbox_id: int, folder_id: int | None = None, modseq: int | None = None) -> None:
    """Tell every session of the mailbox, once the current transaction commits, of a change.

    A change to one folder names it and the HIGHESTMODSEQ it took the folder to.
    """
    transaction.on_commit(lambda: _committed(mailbox_id, folder_id, modseq))
