"""Changes travel between processes over Redis pub/sub, and a Redis outage breaks nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from mailcore.models import Folder, Message
from mailcore.store import events, messages
from mailcore.store.delivery import deliver
from tests.imap_client import IMAPClient, done, idle, message, selected
from tests.servers import ServerProcess
from tests.waiting import await_until, wait_until

needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")
UNREACHABLE = "redis://127.0.0.1:1/0"
FOREVER = "3600"  # a poll interval no test outlives: only pub/sub can deliver a change


@pytest.fixture
def channel(settings) -> str:
    """A channel of this test's own, so nothing else publishing on the Redis interferes."""
    settings.MAILCORE_CHANGE_CHANNEL = f"test:changes:{uuid.uuid4().hex}"
    return settings.MAILCORE_CHANGE_CHANNEL


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def subscribers(name: str) -> int:
    return dict(redis_client().pubsub_numsub(name))[name.encode()]


@needs_redis
def test_a_delivery_in_another_process_reaches_idle_through_redis(
        transactional_db, tmp_path: Path, monkeypatch, channel, alice):
    monkeypatch.setenv("MAILCORE_CHANGE_POLL", FOREVER)
    monkeypatch.setenv("MAILCORE_CHANGE_CHANNEL", channel)
    proc = ServerProcess(tmp_path / "mailcore").start()
    try:
        client = IMAPClient(proc.port("imap"))
        client.login()
        client.ok("SELECT INBOX")
        idle(client)
        wait_until(lambda: subscribers(channel) == 1, "mailcore to subscribe", 10)
        deliver(message(1), "s@remote.test", [alice.pk])  # in this process, not mailcore's
        assert client.response() == "* 1 EXISTS"
        assert client.response() == "* 1 RECENT"  # its \Recent (RFC 3501 2.3.2)
        messages.store_flags(Folder.objects.get(mailbox=alice, name="INBOX").pk, [1], "add",
                             ["\\Seen"])
        assert client.response() == "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))"
        assert done(client) == ([], "OK IDLE completed")
        client.ok("LOGOUT")
        # No one waits: no subscription.
        wait_until(lambda: subscribers(channel) == 0, "mailcore to unsubscribe", 10)
    finally:
        proc.terminate()


def test_a_delivery_succeeds_and_wakes_idle_when_redis_is_unreachable(
        server, alice, settings, caplog):
    settings.REDIS_URL = UNREACHABLE
    client = selected(server)
    idle(client)
    with caplog.at_level(logging.WARNING, logger="mailcore.events"):
        deliver(message(1), "s@remote.test", [alice.pk])
    assert client.response() == "* 1 EXISTS"
    assert done(client) == (["* 1 RECENT"], "OK IDLE completed")
    assert Message.objects.filter(folder__mailbox=alice).count() == 1
    assert any("could not publish a change to Redis" in r.getMessage() for r in caplog.records)


def test_without_a_subscription_the_poll_finds_changes_at_full_pace(
        transactional_db, settings, alice, monkeypatch):
    settings.REDIS_URL = UNREACHABLE
    settings.MAILCORE_CHANGE_POLL = 0.05
    settings.MAILCORE_CHANGE_POLL_SUBSCRIBED = float(FOREVER)
    monkeypatch.setattr(events, "changed", lambda *args: None)  # no wake, no publish

    async def scenario() -> None:
        hub = events.ChangeHub()
        event = hub.watch(alice.pk)
        await await_until(lambda: alice.pk in hub.seen)  # the poll knows the first state
        await asyncio.to_thread(deliver, message(1), "s@remote.test", [alice.pk])
        await asyncio.wait_for(event.wait(), 10)
        assert not hub.subscribed
        hub.unwatch(alice.pk, event)
        await hub.close()

    try:
        asyncio.run(scenario())
    finally:
        from mailcore import dbpool
        dbpool.shutdown()


@needs_redis
def test_the_hub_wakes_the_waiters_of_mailboxes_another_process_published(settings, channel):
    settings.MAILCORE_CHANGE_POLL = float(FOREVER)

    def publish(data: str) -> None:
        redis_client().publish(channel, data)

    async def scenario() -> None:
        hub = events.ChangeHub()
        seven, eight = hub.watch(7), hub.watch(8)
        await await_until(lambda: hub.subscribed)
        await asyncio.to_thread(publish, "not a change")
        await asyncio.to_thread(publish, f"8 {events._origin}")  # this process's own
        await asyncio.to_thread(publish, "7 another-process")
        await asyncio.wait_for(seven.wait(), 10)
        # Redis delivers a channel's messages in order: the two before were ignored.
        assert not eight.is_set()
        hub.unwatch(7, seven)
        hub.unwatch(8, eight)
        assert hub.subscriber is not None
        await asyncio.wait_for(hub.subscriber, 10)  # it ends once no one waits
        assert not hub.subscribed
        await hub.close()

    asyncio.run(scenario())
    assert subscribers(channel) == 0


@needs_redis
def test_the_hub_subscribes_again_when_its_connection_is_dropped(settings, channel):
    settings.MAILCORE_CHANGE_POLL = float(FOREVER)
    name = f"mailcore-changes-{events._origin}"
    admin = redis_client()

    def connection_ids() -> list[int]:
        return [c["id"] for c in admin.client_list(_type="pubsub") if c["name"] == name]

    async def scenario() -> None:
        hub = events.ChangeHub()
        event = hub.watch(7)
        await await_until(lambda: hub.subscribed)
        [first] = connection_ids()
        admin.client_kill_filter(_id=first)
        await await_until(lambda: connection_ids() not in ([], [first]))
        await await_until(lambda: hub.subscribed)
        await asyncio.to_thread(admin.publish, channel, "7 another-process")
        await asyncio.wait_for(event.wait(), 10)
        hub.unwatch(7, event)
        await hub.close()

    asyncio.run(scenario())


class FreezingProxy:
    """A TCP relay to Redis whose open connections can go silent, as if the peer vanished."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.path = parts.path
        self.opened = 0
        self.frozen: list[asyncio.Event] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        """Start relaying; return the Redis URL that goes through the relay."""
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}{self.path}"

    def freeze(self) -> None:
        for frozen in self.frozen:
            frozen.set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        frozen = asyncio.Event()
        self.frozen.append(frozen)
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    if not frozen.is_set():
                        sink.write(data)

        pipes = [asyncio.ensure_future(pipe(reader, upstream_writer)),
                 asyncio.ensure_future(pipe(upstream_reader, writer))]
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
        writer.close()
        upstream_writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()


@needs_redis
def test_the_hub_gives_up_a_silent_connection_and_subscribes_again(
        settings, channel, monkeypatch):
    settings.MAILCORE_CHANGE_POLL = float(FOREVER)
    monkeypatch.setattr(events, "HEARTBEAT", 0.2)

    async def scenario() -> None:
        proxy = FreezingProxy(os.environ["REDIS_URL"])
        settings.REDIS_URL = await proxy.start()
        hub = events.ChangeHub()
        event = hub.watch(7)
        await await_until(lambda: hub.subscribed)
        proxy.freeze()  # no FIN, no RST: only the missing answer to a PING tells
        await await_until(lambda: proxy.opened == 2)
        await await_until(lambda: hub.subscribed)
        await asyncio.to_thread(redis_client().publish, channel, "7 another-process")
        await asyncio.wait_for(event.wait(), 10)
        hub.unwatch(7, event)
        await hub.close()
        await proxy.close()

    asyncio.run(scenario())


def test_the_channel_is_named_after_the_database_unless_set(settings):
    from django.db import connection

    settings.MAILCORE_CHANGE_CHANNEL = ""
    assert events.channel() == f"mailcore:changes:{connection.settings_dict['NAME']}"
    settings.MAILCORE_CHANGE_CHANNEL = "site-b:changes"
    assert events.channel() == "site-b:changes"
