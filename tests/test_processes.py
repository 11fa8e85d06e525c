"""MAILCORE_PROCESSES: worker processes sharing the listeners, and their supervisor."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import smtplib
import socket
import time
from pathlib import Path

import pytest

from mailcore.listeners import ListenerSpec, bind
from tests.conftest import PASSWORD
from tests.imap_client import ALICE, IMAPClient, message
from tests.servers import RawClient, ServerProcess, refuses_connections
from tests.waiting import WAIT, wait_until

_STARTED = re.compile(r" mailcore worker=(\d+) started pid=(\d+)$")


@pytest.fixture
def start_workers(transactional_db, tmp_path: Path):
    """Start `manage.py mailcore` with two worker processes (and settings of the test's own).

    The change poll is too slow to matter: IDLE must hear of a sibling's change from the
    sibling itself (or from Redis).
    """
    started: list[ServerProcess] = []

    def start(**environment: str) -> ServerProcess:
        proc = ServerProcess(tmp_path / "mailcore", {
            "MAILCORE_PROCESSES": "2",
            "MAILCORE_CHANGE_POLL": "60",
            "MAILCORE_CHANGE_POLL_SUBSCRIBED": "60",
            **environment,
        })
        started.append(proc.start())
        wait_until(lambda: len(log_matches(proc, r" worker=\d+ mailcore ready ")) == 2,
                   "both workers to be ready")
        return proc

    yield start
    for proc in started:
        if proc.proc and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)
        for pid in worker_pids(proc).values():
            with_pid_gone(pid)


@pytest.fixture
def workers(start_workers) -> ServerProcess:
    return start_workers()


def log_matches(proc: ServerProcess, pattern: str) -> list[re.Match[str]]:
    text = proc.log_path.read_text(errors="replace")
    return [m for line in text.splitlines() if (m := re.search(pattern, line))]


def worker_pids(proc: ServerProcess) -> dict[int, int]:
    """Return the latest pid of each worker, by worker number, as the supervisor logged it."""
    return {int(m[1]): int(m[2]) for m in log_matches(proc, _STARTED.pattern)}


def running(pid: int) -> bool:
    """Return whether pid is a live process (not gone, not a zombie no one reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def with_pid_gone(pid: int) -> None:
    if running(pid):
        os.kill(pid, signal.SIGKILL)


def on_a_worker(proc: ServerProcess, protocol: str, connect):
    """Open a connection with connect(); return it with the number of the worker serving it.

    Connections are opened one at a time, so the next session's connect line is its own.
    """
    pattern = rf" worker=(\d+) {protocol} session=\S+ peer=\S+ connect$"
    before = len(log_matches(proc, pattern))
    client = connect()
    wait_until(lambda: len(log_matches(proc, pattern)) > before, f"a {protocol} connect line")
    return client, int(log_matches(proc, pattern)[before][1])


def imap_on_each_worker(proc: ServerProcess, tries: int = 200) -> dict[int, IMAPClient]:
    """Open IMAP sessions until one is served by each worker; return one per worker.

    Which idle worker accepts a connection on the shared socket is a race the kernel
    decides; a worker just (re)started can win many in a row, hence the generous tries.
    """
    found: dict[int, IMAPClient] = {}
    for attempt in range(tries):
        if attempt:
            time.sleep(0.01)  # let both workers be back in their accept loops
        client, worker = on_a_worker(
            proc, "imap", lambda: IMAPClient(proc.port("imap"), timeout=WAIT))
        assert client.greeting.startswith("* OK ")
        found.setdefault(worker, client)
        if len(found) == 2:
            return found
    pytest.fail(f"{tries} IMAP connections, all served by worker {list(found)}")


def selected_on_each_worker(proc: ServerProcess) -> dict[int, IMAPClient]:
    """Return an IMAP session on each worker, logged in with INBOX selected."""
    sessions = imap_on_each_worker(proc)
    for client in sessions.values():
        client.ok(f'LOGIN "{ALICE}" "{PASSWORD}"')
        client.ok("SELECT INBOX")
    return sessions


def assert_log_clean(proc: ServerProcess) -> None:
    text = proc.log_path.read_text(errors="replace")
    bad = [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]
    assert not bad, "mailcore logged errors:\n" + text


def test_sockets_bound_for_the_workers_serve_connections_without_nagle_delays():
    # asyncio sets TCP_NODELAY only on sockets that say they are TCP; without it a reply
    # written in two parts waits for the client's delayed ACK (40 ms).
    [sock] = bind([ListenerSpec("imap", -1, None)], "127.0.0.1").values()
    seen: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = writer.get_extra_info("socket")
        seen.append(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    async def connect_once() -> None:
        server = await asyncio.start_server(serve, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname())
        while not seen:
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(asyncio.wait_for(connect_once(), WAIT))
    assert seen and seen[0] != 0


def test_connections_are_served_by_both_workers(workers, alice):
    selected_on_each_worker(workers)  # both workers serve a session (checked below)
    pop, _ = on_a_worker(workers, "pop3", lambda: RawClient(workers.port("pop3")))
    assert pop.line().startswith("+OK")
    assert set(worker_pids(workers)) == {1, 2}
    assert_log_clean(workers)


def test_failed_logins_count_across_workers(start_workers, alice):
    workers = start_workers(AUTH_MAX_FAILURES="4")
    for client in imap_on_each_worker(workers).values():
        for _ in range(2):
            _, done = client.run(f'LOGIN "{ALICE}" "wrong password"')
            assert done.startswith("NO [AUTHENTICATIONFAILED] ")
    # Two failures in each worker: four in all, so neither lets the right password in now.
    for client in imap_on_each_worker(workers).values():
        _, done = client.run(f'LOGIN "{ALICE}" "{PASSWORD}"')
        assert done.startswith("NO [UNAVAILABLE] ")
    assert_log_clean(workers)


def test_a_delivery_in_one_worker_wakes_idle_in_the_other(workers, alice):
    sessions = imap_on_each_worker(workers)
    # An SMTP session on either worker; IDLE waits in the other one.
    smtp, smtp_worker = on_a_worker(
        workers, "smtp", lambda: smtplib.SMTP("127.0.0.1", workers.port("smtp"), timeout=10))
    watcher = sessions[3 - smtp_worker]
    watcher.ok(f'LOGIN "{ALICE}" "{PASSWORD}"')
    watcher.ok("SELECT INBOX")
    watcher.send("i1 IDLE")
    assert watcher.response() == "+ idling"

    smtp.sendmail("sender@remote.test", [ALICE], message(1))
    smtp.quit()
    # Generous: the poll (60 s here) cannot be what wakes it within the client's 10 s.
    assert watcher.response() == "* 1 EXISTS"
    watcher.send("DONE")
    assert watcher.collect("i1") == (["* 1 RECENT"], "OK IDLE completed")
    assert_log_clean(workers)


def test_sigterm_drains_every_worker_and_the_whole_group_exits(workers, alice):
    sessions = selected_on_each_worker(workers)
    smtp, _ = on_a_worker(workers, "smtp", lambda: RawClient(workers.port("smtp")))
    assert smtp.smtp_reply().startswith("220 ")
    smtp.transact("EHLO client.remote.test", "250", smtp=True)
    smtp.transact("MAIL FROM:<sender@remote.test>", "250", smtp=True)
    smtp.transact(f"RCPT TO:<{ALICE}>", "250", smtp=True)
    smtp.transact("DATA", "354", smtp=True)
    smtp.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    pids = worker_pids(workers)

    workers.proc.send_signal(signal.SIGTERM)
    for name in ("smtp", "imap", "pop3"):
        wait_until(lambda name=name: refuses_connections(workers.port(name)),
                   f"{name} to stop accepting")
    assert workers.proc.poll() is None, "exited with sessions still open"
    # The IMAP sessions wait for their client: each is told at once.
    for client in sessions.values():
        assert client.response().startswith("* BYE ")
        assert client.closed()
    smtp.send(b"second half\r\n.\r\n")
    assert smtp.smtp_reply().startswith("250 2.0.0 ")
    # Between commands again, the SMTP session is told too, without waiting for QUIT.
    assert smtp.smtp_reply().startswith("421 4.3.2 ")
    assert workers.proc.wait(WAIT) == 0
    assert not [pid for pid in pids.values() if running(pid)]
    assert len(log_matches(workers, r" worker=\d+ pid=\d+ exited with status 0$")) == 2
    assert_log_clean(workers)


def test_a_worker_that_dies_is_replaced(workers, alice):
    old = worker_pids(workers)
    os.kill(old[1], signal.SIGKILL)
    wait_until(lambda: worker_pids(workers)[1] != old[1], "worker 1 to be started again")
    new = worker_pids(workers)
    assert new[2] == old[2]
    assert running(new[1])
    assert not running(old[1])
    wait_until(lambda: len(log_matches(workers, r" worker=1 mailcore ready ")) == 2,
               "the new worker 1 to be ready")
    # Both serve: the new worker among them.
    sessions = imap_on_each_worker(workers)
    for client in sessions.values():
        client.ok(f'LOGIN "{ALICE}" "{PASSWORD}"')
    assert_log_clean(workers)


def test_kill_9_of_the_supervisor_leaves_no_worker_serving(workers, alice):
    sessions = imap_on_each_worker(workers)
    pids = worker_pids(workers)
    workers.proc.kill()
    workers.proc.wait(10)
    # The workers drain (an open session for up to SHUTDOWN_GRACE) and exit.
    for client in sessions.values():
        assert client.response().startswith("* BYE ")
    wait_until(lambda: not [pid for pid in pids.values() if running(pid)],
               "the workers to exit")
    assert refuses_connections(workers.port("imap"))
    assert_log_clean(workers)
