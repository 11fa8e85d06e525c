"""IMAP figures, ours beside Dovecot: a mixed load, a 50,000-message folder, idle IDLE memory.

Run as root (Dovecot drops privileges itself), from the project folder:

    python bench/imap.py compare [--clients 10 50] [--rounds 1 20] [--seconds 20]
        [--only ours|dovecot] [--processes N]
        [--phases load,folder,idle] [--folder-messages 50000] [--connections 1000]
        [--database-url postgres://USER@HOST:PORT/SCRATCH]
    python bench/imap.py idle [--connections 1000] [--processes N]   (compare --phases idle)
    python bench/imap.py search [--messages 50000]      (ours only, in-process)

`compare` starts our `manage.py mailcore` (IMAP only; LOG_LEVEL=WARNING and DEBUG=0 as in
bench/ours.py; MAILCORE_PROCESSES from --processes, default 1 as the setting's; a
throwaway data folder, SQLite or a scratch Postgres database) and Dovecot
(a throwaway config on 127.0.0.1, maildir, bench/reference.py), fills both with the same
messages (ours by bulk insert through the store's models, Dovecot by writing maildir
files as its LMTP names them), and measures on each, one server at a time:

(a) load: N clients, each on a mailbox of its own, in a loop of sessions: LOGIN, R rounds
    of (SELECT, FETCH of the newest 50 messages' headers, 3 whole bodies, STORE +/-\\Seen,
    SEARCH UNSEEN and SUBJECT, APPEND, UID STORE \\Deleted and EXPUNGE of what was
    appended, NOOP), LOGOUT; R = 1 (a login per round) and 20 (long sessions, as desktop
    clients keep). Commands answered OK per second over --seconds, after each client's
    user has logged in once and a warm-up, with the CPU the server (all its processes)
    and the load generator used meanwhile, and the server's CPU milliseconds per command;
    at the most clients, each command's mean, median and 99th percentile latency.
(b) folder: SELECT and FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM
    SUBJECT DATE)]) of a 50,000-message INBOX, twice: the first time Dovecot builds its
    index and cache, the second it reads them.
(c) idle: 1,000 sessions logged in, INBOX selected, in IDLE. Ours is one process, or a
    supervisor and its workers: RSS and PSS summed over them, with the sessions and with
    one. Dovecot forks an imap process per session: their RSS summed (which counts shared
    libraries 1,000 times) and their PSS (which splits them).

Targets: ours >= 0.7x Dovecot's commands/s with one process and >= 1.0x with
`--processes auto`; at the most clients, every command's median under 20 ms and 99th
percentile under 100 ms; 1,000 idle IDLE sessions < 200 MB, and 10,000
(`--connections 10000`) < 1 GB (ours, the whole server: with several processes, RSS
summed counts the pages they share in each, PSS summed once). `search` times the store's
SEARCH on a bulk-inserted folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
USER, PASSWORD = "bench@bench.test", "bench-password"
PROGRAMS = [
    "UNSEEN", "FLAGGED UNSEEN", "SUBJECT 4711", "FROM sender", "LARGER 40000",
    "SINCE 1-Jun-2024 BEFORE 1-Jul-2024", "OR FLAGGED KEYWORD $Work", "NOT SEEN SMALLER 2000",
    "UID 1000:2000 SEEN", "FLAGGED BODY needle", "HEADER X-Mailer bench FLAGGED",
]
# Ours must reach at least this fraction of Dovecot's commands/s: one process, or every core.
ONE_PROCESS_TARGET, ALL_CORES_TARGET = 0.7, 1.0


def load_target(processes: str) -> float:
    """Return the commands/s ratio to Dovecot that ours must reach with these processes."""
    return ONE_PROCESS_TARGET if processes == "1" else ALL_CORES_TARGET
MEDIAN_TARGET_MS, P99_TARGET_MS = 20, 100  # every command's, at the most clients
# For the whole of our server with --connections idle sessions: (sessions up to, MB).
IDLE_TARGETS_MB = ((1_000, 200), (10_000, 1024))


def idle_target_mb(connections: int) -> int:
    """Return the memory target for this many idle sessions (the next step up's)."""
    return next((mb for most, mb in IDLE_TARGETS_MB if connections <= most),
                IDLE_TARGETS_MB[-1][1] * connections // IDLE_TARGETS_MB[-1][0])
BIG_USER = "big@bench.test"
HEADERS_FETCH = "FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"
COMMAND_TIMEOUT = 120.0  # seconds for any one command before the benchmark gives up
READ_LIMIT = 1 << 24
# Dovecot's defaults cap processes at 100 a service and connections at 10 a user and IP:
# raised so that 50 clients and 1,000 idle sessions fit. Its authentication cache is on,
# as our verified-login cache is, so neither hashes the same password at every LOGIN.
DOVECOT_SETTINGS = """\
default_process_limit = 1500
default_client_limit = 6000
service imap {
  process_limit = 2000
}
protocol imap {
  mail_max_userip_connections = 2000
}
auth_cache_size = 10M
auth_cache_ttl = 1 hour
"""
WORDS = ("quarterly", "invoice", "meeting", "holiday", "release", "budget", "review",
         "lunch", "travel", "contract", "support", "roadmap")


# The corpus: the same messages for both servers --------------------------------------------

def corpus_message(n: int, to: str) -> bytes:
    """Return message n of a mailbox: CRLF, 1-12 KB, as a delivery would have stored it."""
    rng = random.Random(n * 7919 + len(to))
    word = WORDS[n % len(WORDS)]
    sender = f"{WORDS[(n * 5) % len(WORDS)]}{n % 37}@sender{n % 11}.test"
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1_700_000_000 + 600 * n))
    head = (
        f"Return-Path: <{sender}>\r\n"
        f"Received: from mx{n % 7}.sender{n % 11}.test (mx{n % 7}.sender{n % 11}.test "
        f"[192.0.2.{n % 250}])\r\n\tby mx.bench.test with ESMTPS id b{n:08d}\r\n"
        f"\tfor <{to}>; {date}\r\n"
        f"From: Sender {n % 37} <{sender}>\r\nTo: <{to}>\r\n"
        f"Subject: The {word} report, number {n}\r\nDate: {date}\r\n"
        f"Message-ID: <{n}.{hashlib.sha1(to.encode()).hexdigest()[:8]}@sender.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode()
    words = [WORDS[rng.randrange(len(WORDS))] for _ in range(rng.randrange(150, 1800))]
    lines = [" ".join(words[i:i + 11]) for i in range(0, len(words), 11)]
    return head + "\r\n".join(lines).encode() + b"\r\n"


def corpus_flags(n: int) -> str:
    """Return message n's flags as Maildir letters: most read, a few flagged or answered."""
    return ("F" if n % 53 == 0 else "") + ("R" if n % 17 == 0 else "") + (
        "S" if n % 4 else "")


def appended_message(client: int, n: int) -> bytes:
    return (f"From: <client{client}@bench.test>\r\nTo: <client{client}@bench.test>\r\n"
            f"Subject: Draft {n} of client {client}\r\n"
            f"Message-ID: <draft.{client}.{n}.{time.monotonic_ns()}@bench.test>\r\n\r\n"
            + "A draft, saved by the client.\r\n" * 40).encode()


def fill_ours(spec: Sequence[tuple[str, str, int]]) -> None:
    """Add mailboxes with corpus messages in their INBOX, in bulk, through the store's models.

    Run inside `manage.py shell` with the server's settings. Blob files are written without
    the store's fsyncs: this is a benchmark's setup, not a delivery.
    """
    from django.db import transaction

    from mailcore import directory
    from mailcore.message.summary import summarize
    from mailcore.models import Blob, Folder, Mailbox, Message
    from mailcore.store import structure
    from mailcore.store.blobs import blob_store

    store = blob_store()
    for domain in sorted({address.rpartition("@")[2] for address, _, _ in spec}):
        directory.add_domain(domain)
    for address, password, count in spec:
        mailbox = directory.add_mailbox(address, password, quota_bytes=0)
        folder = Folder.objects.get(mailbox=mailbox, name="INBOX")
        blobs: dict[str, Blob] = {}
        rows = []
        for n in range(1, count + 1):
            raw = corpus_message(n, address)
            key = hashlib.sha256(raw).hexdigest()
            if key not in blobs:
                path = store.path(key)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(raw)
                blobs[key] = Blob(key=key, size=len(raw))
            flags = corpus_flags(n)
            rows.append(Message(
                folder=folder, uid=n, blob_id=key, size=len(raw), modseq=n + 1,
                internal_date=_corpus_date(n), seen="S" in flags, flagged="F" in flags,
                answered="R" in flags, **summarize(raw), **structure.compute(raw)))
        with transaction.atomic():
            Blob.objects.bulk_create(blobs.values(), batch_size=1000, ignore_conflicts=True)
            Message.objects.bulk_create(rows, batch_size=1000)
            Folder.objects.filter(pk=folder.pk).update(uidnext=count + 1,
                                                       highestmodseq=count + 1)
            Mailbox.objects.filter(pk=mailbox.pk).update(
                used_bytes=sum(b.size for b in blobs.values()))


def _corpus_date(n: int):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(1_700_000_000 + 600 * n, UTC)


# The servers ----------------------------------------------------------------------------------

@dataclass
class Server:
    """A running IMAP server: where it listens, and which processes are it."""

    name: str
    port: int
    processes: Callable[[], list[tuple[int, str]]]  # (pid, command name), all of the server
    logs: list[Path]
    filling: float  # seconds taken to fill its store
    restart: Callable[[], None] | None = None  # a fresh process on the same data, if any
    host: str = "127.0.0.1"


FILL_SCRIPT = """\
import sys
sys.path.insert(0, {bench!r})
from imap import fill_ours
fill_ours({spec!r})
"""


def _our_environment(data_dir: Path, port: str, database_url: str | None,
                     processes: str) -> dict[str, str]:
    from ours import NOT_INHERITED

    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(dict.fromkeys(("SMTP_PORT", "SUBMISSION_PORT", "SUBMISSIONS_PORT",
                              "POP3_PORT", "POP3S_PORT", "IMAPS_PORT"), "0"))
    env.update(
        DATA_DIR=str(data_dir), IMAP_PORT=port, MAIL_BIND_ADDRESS="127.0.0.1",
        MAILCORE_PORTS_FILE=str(data_dir / "ports.json"),
        MAIL_HOSTNAME="mx.bench.test", PLAINTEXT_AUTH="loopback",
        LOG_LEVEL="WARNING",  # as bench/ours.py: an INFO line per command costs
        DEBUG="0",  # as in production: DEBUG keeps and times every query
        SITE_URL="http://127.0.0.1:8000", SECRET_KEY="bench-only-" + "x" * 50,
        SHUTDOWN_GRACE="5", DJANGO_SETTINGS_MODULE="panel.settings",
        MAILCORE_PROCESSES=str(processes),
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env




@contextlib.contextmanager
def our_server(tmpdir: Path, spec: Sequence[tuple[str, str, int]],
               database_url: str | None, processes: str = "1") -> Iterator[Server]:
    """`manage.py mailcore` serving IMAP on a port it picks and reports, its store filled per spec.

    With processes above one it is a supervisor and that many workers, all counted. A
    restart asks for the port the first start reported, so clients keep their address.
    """
    from daemons import daemon, wait_ports_file
    from ours import _manage, scratch_database

    log = tmpdir / "mailcore.log"
    env = _our_environment(tmpdir, "auto", database_url, processes)
    ports_file = Path(env["MAILCORE_PORTS_FILE"])
    with contextlib.ExitStack() as stack:
        if database_url:
            stack.enter_context(scratch_database(database_url))
        _manage(["migrate", "--noinput"], env, log, 900)
        began = time.monotonic()
        _manage(["shell", "-c", FILL_SCRIPT.format(bench=str(BENCH), spec=list(spec))],
                env, log, 900)
        filling = time.monotonic() - began
        running: list[tuple[subprocess.Popen[bytes], contextlib.ExitStack]] = []

        def start() -> int:
            ports_file.unlink(missing_ok=True)
            inner = contextlib.ExitStack()
            proc = inner.enter_context(daemon([sys.executable, "manage.py", "mailcore"], log,
                                              env=env, cwd=PROJECT))
            running.append((proc, inner))
            return wait_ports_file(ports_file, proc, log)["imap"]

        def restart() -> None:
            running.pop()[1].close()
            start()

        stack.callback(lambda: running and running.pop()[1].close())
        port = start()
        env["IMAP_PORT"] = str(port)
        def processes_now() -> list[tuple[int, str]]:
            pid = running[-1][0].pid
            return [(pid, "mailcore"), *_children(pid)]

        yield Server("ours", port, processes_now, [log], filling, restart)


@contextlib.contextmanager
def dovecot_server(tmpdir: Path, spec: Sequence[tuple[str, str, int]]) -> Iterator[Server]:
    """Dovecot (bench/reference.py) serving IMAP on a free port, its maildirs filled per spec."""
    from load import free_port
    from reference import dovecot_only

    users = [(address, password) for address, password, _ in spec]
    with dovecot_only(tmpdir, free_port(), free_port(), users=users,
                      settings=DOVECOT_SETTINGS) as ref:
        began = time.monotonic()
        for address, _, count in spec:
            ref.fill(address, ((corpus_message(n, address), corpus_flags(n))
                               for n in range(1, count + 1)))
        filling = time.monotonic() - began
        master = int((tmpdir / "dovecot" / "run" / "master.pid").read_text())

        def processes() -> list[tuple[int, str]]:
            return [(master, "dovecot"), *_children(master)]

        assert ref.imap_port is not None
        yield Server("dovecot", ref.imap_port, processes, ref.logs, filling)


def _cpu_seconds(processes: list[tuple[int, str]]) -> float:
    """Return the CPU time these processes used, with that of their children that ended."""
    total = 0
    for pid, _ in processes:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def _children(parent: int) -> list[tuple[int, str]]:
    """Return (pid, command name) of the processes whose parent is `parent`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if int(stat[stat.rindex(")") + 2:].split()[1]) == parent:
            found.append((int(entry.name), name))
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    """Return a process's (RSS, PSS) in KiB; (0, 0) if it has gone."""
    try:
        rss = next(int(line.split()[1]) for line in
                   Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
        pss = next(int(line.split()[1]) for line in
                   Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                   if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0, 0
    return rss, pss


# An IMAP client, small and quick enough not to be what is measured --------------------------

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.M)
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


class ImapError(Exception):
    """The server answered NO or BAD, or something unexpected."""


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.tags = 0
        self.idle_tag = b""

    @classmethod
    async def open(cls, server: Server) -> Connection:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            reader, writer = await asyncio.open_connection(server.host, server.port,
                                                           limit=READ_LIMIT)
            connection = cls(reader, writer)
            greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            writer.close()
            raise ImapError(f"greeting {greeting!r}")
        return connection

    async def command(self, text: str, literal: bytes | None = None) -> tuple[list[bytes], bytes]:
        """Send a command (with a LITERAL+ literal); return its untagged lines and tagged OK."""
        self.tags += 1
        tag = b"a%d" % self.tags
        data = tag + b" " + text.encode()
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        self.writer.write(data + b"\r\n")
        async with asyncio.timeout(COMMAND_TIMEOUT):
            return await self._response(tag + b" ")

    async def _response(self, tag: bytes) -> tuple[list[bytes], bytes]:
        untagged = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise EOFError("connection closed")
            while (match := _LITERAL.search(line)) is not None:
                line += await self.reader.readexactly(int(match.group(1)))
                line += await self.reader.readline()
            if line.startswith(tag):
                if line[len(tag):len(tag) + 3] != b"OK ":
                    raise ImapError(line.decode(errors="replace").strip())
                return untagged, line
            untagged.append(line)

    async def idle(self) -> None:
        self.tags += 1
        self.idle_tag = b"a%d " % self.tags
        self.writer.write(self.idle_tag + b"IDLE\r\n")
        async with asyncio.timeout(COMMAND_TIMEOUT):
            while not (line := await self.reader.readline()).startswith(b"+"):
                if not line or line.startswith(self.idle_tag):
                    raise ImapError(f"IDLE refused: {line!r}")

    async def done(self) -> None:
        self.writer.write(b"DONE\r\n")
        async with asyncio.timeout(COMMAND_TIMEOUT):
            await self._response(self.idle_tag)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


# (a) The mixed load ---------------------------------------------------------------------------

@dataclass
class LoadFigures:
    clients: int
    rounds: int  # of the mix per login
    seconds: float
    commands: int = 0
    sessions: int = 0
    errors: int = 0
    client_cpu: float = 0.0  # seconds of CPU the load generator used while measuring
    server_cpu: float = 0.0  # and the server, all its processes
    latency: dict[str, list[float]] = field(default_factory=dict)  # verb -> seconds, each
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.commands / self.seconds if self.seconds else 0.0


class _Load:
    def __init__(self, server: Server, users: Sequence[tuple[str, str]], figures: LoadFigures):
        self.server, self.users, self.figures = server, users, figures
        self.measuring = False
        self.stopping = False
        self.drafts = 0

    async def timed(self, conn: Connection, verb: str, text: str,
                    literal: bytes | None = None) -> tuple[list[bytes], bytes]:
        began = time.perf_counter()
        result = await conn.command(text, literal)
        if self.measuring:
            self.figures.latency.setdefault(verb, []).append(time.perf_counter() - began)
            self.figures.commands += 1
        return result

    async def client(self, number: int) -> None:
        user, password = self.users[number]
        rng = random.Random(number)
        while not self.stopping:
            try:
                await self.session(number, user, password, rng)
                if self.measuring:
                    self.figures.sessions += 1
            except (ImapError, OSError, EOFError, TimeoutError,
                    asyncio.IncompleteReadError) as exc:
                self.figures.errors += 1
                self.figures.first_error = self.figures.first_error or repr(exc)
                if self.figures.errors > 100:
                    raise RuntimeError(f"{self.server.name}: too many errors: "
                                       f"{self.figures.first_error}") from exc
                await asyncio.sleep(0.1)

    async def session(self, number: int, user: str, password: str, rng: random.Random) -> None:
        """Log in, run `rounds` rounds of the mix (fewer when told to stop), log out."""
        conn = await Connection.open(self.server)
        try:
            await self.timed(conn, "LOGIN", f'LOGIN "{user}" "{password}"')
            for _ in range(self.figures.rounds):
                await self.round(conn, number, rng)
                if self.stopping:
                    break
            await self.timed(conn, "LOGOUT", "LOGOUT")
        finally:
            await conn.close()

    async def round(self, conn: Connection, number: int, rng: random.Random) -> None:
        untagged, _ = await self.timed(conn, "SELECT", "SELECT INBOX")
        exists = int(_EXISTS.findall(b"".join(untagged))[-1])
        await self.timed(conn, "FETCH headers", f"FETCH {max(1, exists - 49)}:{exists} "
                         "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])")
        for _ in range(3):
            await self.timed(conn, "FETCH body", f"FETCH {rng.randint(1, exists)} "
                             "(FLAGS BODY.PEEK[])")
        await self.timed(conn, "STORE", f"STORE {rng.randint(1, exists)} +FLAGS (\\Seen)")
        await self.timed(conn, "STORE", f"STORE {rng.randint(1, exists)} -FLAGS (\\Seen)")
        await self.timed(conn, "SEARCH", "SEARCH UNSEEN")
        await self.timed(conn, "SEARCH", f"SEARCH SUBJECT {WORDS[rng.randrange(len(WORDS))]}")
        self.drafts += 1
        _, ok = await self.timed(conn, "APPEND", "APPEND INBOX (\\Seen)",
                                 appended_message(number, self.drafts))
        uid = _APPENDUID.search(ok)
        if uid is None:
            raise ImapError(f"no APPENDUID in {ok!r}")
        await self.timed(conn, "STORE", f"UID STORE {int(uid.group(1))} "
                         "+FLAGS.SILENT (\\Deleted)")
        await self.timed(conn, "EXPUNGE", "EXPUNGE")
        await self.timed(conn, "NOOP", "NOOP")


async def _run_load(server: Server, users: Sequence[tuple[str, str]], clients: int,
                    rounds: int, seconds: float, warmup: float) -> LoadFigures:
    figures = LoadFigures(clients, rounds, seconds)
    load = _Load(server, users, figures)
    # Every client's user logs in once first, so that the first password checks (argon2
    # here, Dovecot's own hash there, each then cached) fall outside the measurement.
    await asyncio.gather(*(_log_in_and_out(server, user) for user, _ in users[:clients]))
    tasks = [asyncio.create_task(load.client(n)) for n in range(clients)]
    try:
        await asyncio.sleep(warmup)
        load.measuring = True
        began, cpu = time.perf_counter(), time.process_time()
        server_cpu = _cpu_seconds(server.processes())
        await asyncio.sleep(seconds)
        load.measuring = False
        figures.seconds = time.perf_counter() - began
        figures.client_cpu = time.process_time() - cpu
        figures.server_cpu = _cpu_seconds(server.processes()) - server_cpu
        load.stopping = True
        await asyncio.wait_for(asyncio.gather(*tasks), COMMAND_TIMEOUT)
    finally:
        for task in tasks:
            task.cancel()
    return figures


# (b) A big folder ----------------------------------------------------------------------------

@dataclass
class FolderFigures:
    select: float
    fetch: float
    fetched: int
    octets: int


async def _open_big_folder(server: Server) -> FolderFigures:
    conn = await Connection.open(server)
    try:
        await conn.command(f'LOGIN "{BIG_USER}" "{PASSWORD}"')
        began = time.perf_counter()
        await conn.command("SELECT INBOX")
        selected = time.perf_counter()
        untagged, _ = await conn.command(HEADERS_FETCH)
        fetched = time.perf_counter()
        await conn.command("LOGOUT")
    finally:
        await conn.close()
    count = sum(1 for line in untagged if b" FETCH (" in line[:20])
    return FolderFigures(selected - began, fetched - selected, count,
                         sum(len(line) for line in untagged))


# (c) Idle IDLE sessions ----------------------------------------------------------------------

@dataclass
class IdleFigures:
    connections: int
    opening: float  # seconds to open, log in, select and IDLE them all
    before_rss: int  # KiB, the whole server with one session
    after_rss: int  # KiB, the whole server with connections + 1
    before_pss: int  # KiB, likewise with shared pages split among the processes sharing them
    after_pss: int
    per_session_rss: float  # KiB: ours the delta; Dovecot an imap process's RSS
    per_session_pss: float  # KiB: likewise, with shared pages split among their users
    session_processes: int  # Dovecot's imap processes (0 for ours)


def _server_memory(server: Server) -> tuple[int, int, list[tuple[int, int]]]:
    """Return the server's total RSS and PSS (KiB) and each imap process's (RSS, PSS)."""
    total_rss = total_pss = 0
    sessions = []
    for pid, name in server.processes():
        rss, pss = _memory_kib(pid)
        total_rss += rss
        total_pss += pss
        if name == "imap":
            sessions.append((rss, pss))
    return total_rss, total_pss, sessions


async def _idle_session(server: Server, user: str) -> Connection:
    conn = await Connection.open(server)
    await conn.command(f'LOGIN "{user}" "{PASSWORD}"')
    await conn.command("SELECT INBOX")
    await conn.idle()
    return conn


async def _log_in_and_out(server: Server, user: str) -> None:
    conn = await Connection.open(server)
    try:
        await conn.command(f'LOGIN "{user}" "{PASSWORD}"')
        await conn.command("LOGOUT")
    finally:
        await conn.close()


async def _idle(server: Server, users: Sequence[str], connections: int) -> IdleFigures:
    # Every user logs in once first, all at once: the password checks' memory (argon2id,
    # 19 MiB each, in each hashing thread) is then in the baseline, not in the sessions.
    await asyncio.gather(*(_log_in_and_out(server, user) for user in users))
    opened = [await _idle_session(server, users[0])]
    await asyncio.sleep(1)
    before_rss, before_pss, _ = _server_memory(server)
    began = time.perf_counter()
    try:
        for start in range(0, connections, 50):
            batch = range(start, min(start + 50, connections))
            opened += await asyncio.gather(*(_idle_session(server, users[n % len(users)])
                                             for n in batch))
        opening = time.perf_counter() - began
        await asyncio.sleep(3)
        after_rss, after_pss, sessions = _server_memory(server)
    finally:
        for done in asyncio.as_completed([_leave(conn) for conn in opened]):
            with contextlib.suppress(Exception):
                await done
    if sessions:  # Dovecot: a process per session
        per_rss = sum(rss for rss, _ in sessions) / len(sessions)
        per_pss = sum(pss for _, pss in sessions) / len(sessions)
    else:
        per_rss = (after_rss - before_rss) / connections
        per_pss = (after_pss - before_pss) / connections
    return IdleFigures(connections, opening, before_rss, after_rss, before_pss, after_pss,
                       per_rss, per_pss, len(sessions))


async def _leave(conn: Connection) -> None:
    try:
        await conn.done()
        await conn.command("LOGOUT")
    finally:
        await conn.close()


# The comparison -------------------------------------------------------------------------------

@dataclass
class Results:
    server: Server
    load: list[LoadFigures] = field(default_factory=list)
    folder: list[FolderFigures] = field(default_factory=list)
    idle: IdleFigures | None = None


def measure(server: Server, args: argparse.Namespace, users: Sequence[tuple[str, str]]
            ) -> Results:
    results = Results(server)
    phases = args.phases
    if "load" in phases:
        for rounds in args.rounds:
            for clients in args.clients:
                figures = asyncio.run(_run_load(server, users, clients, rounds, args.seconds,
                                                args.warmup))
                results.load.append(figures)
                print(f"  {server.name}: {clients} clients, {rounds} rounds a login: "
                      f"{figures.rate:.0f} commands/s, {_cpu_per_command(figures):.2f} ms CPU a "
                      f"command ({figures.errors} errors)", flush=True)
    if "folder" in phases:
        for _ in range(2):
            results.folder.append(asyncio.run(_open_big_folder(server)))
        print(f"  {server.name}: folder: " + ", ".join(
            f"{f.select * 1000:.0f} + {f.fetch * 1000:.0f} ms" for f in results.folder),
            flush=True)
    if "idle" in phases:
        if server.restart is not None and phases & {"load", "folder"}:
            server.restart()  # so that the idle figures do not carry the other phases' memory
        results.idle = asyncio.run(_idle(server, [u for u, _ in users], args.connections))
        print(f"  {server.name}: idle: RSS summed {results.idle.after_rss / 1024:.0f} MB, PSS "
              f"summed {results.idle.after_pss / 1024:.0f} MB", flush=True)
    return results


def _latency(took: list[float]) -> tuple[float, float, float]:
    """Return (mean, median, 99th percentile) in milliseconds; zeros without samples."""
    if not took:
        return 0.0, 0.0, 0.0
    ordered = sorted(took)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return (1000 * statistics.fmean(ordered), 1000 * statistics.median(ordered), 1000 * p99)


def _cpu_per_command(figures: LoadFigures) -> float:
    """Return the server's CPU milliseconds per command answered while measuring."""
    return 1000 * figures.server_cpu / figures.commands if figures.commands else 0.0


def _mb(kib: float) -> str:
    return f"{kib / 1024:.1f} MB"


def report(results: dict[str, Results], args: argparse.Namespace) -> list[str]:
    """Return the printed comparison: each figure for each server, ratios and targets."""
    names = list(results)
    lines = []
    if "load" in args.phases:
        lines.append("(a) mixed load, commands answered OK per second "
                     f"({args.seconds:g} s after {args.warmup:g} s of warm-up); a round is "
                     "SELECT, FETCH 50 headers, 3 bodies, 3 STORE, 2 SEARCH, APPEND, EXPUNGE, "
                     "NOOP:")
        target = load_target(args.processes)
        lines.append(f"  {'clients':>7} {'rounds/login':>12}" + "".join(f"{n:>10}" for n in names)
                     + (f"   ours/dovecot  target >= {target:g}x" if len(names) == 2 else ""))
        runs = list(zip(*(results[n].load for n in names), strict=True))
        for run in runs:
            row = f"  {run[0].clients:>7} {run[0].rounds:>12}" + "".join(
                f"{figures.rate:>10.0f}" for figures in run)
            if len(names) == 2:
                ratio = run[0].rate / run[1].rate if run[1].rate else 0.0
                row += f"   {ratio:>12.2f}  {'met' if ratio >= target else 'NOT met'}"
            lines.append(row)
        for run in runs:
            for name, figures in zip(names, run, strict=True):
                lines.append(
                    f"  {name} at {figures.clients} clients, {figures.rounds} rounds: "
                    f"{figures.commands} commands, {figures.sessions} sessions ended, "
                    f"{figures.errors} errors; CPU: server "
                    f"{100 * figures.server_cpu / figures.seconds:.0f}% "
                    f"({_cpu_per_command(figures):.2f} ms a command), load generator "
                    f"{100 * figures.client_cpu / figures.seconds:.0f}%"
                    + (f"; first error: {figures.first_error}" if figures.errors else ""))
        for run in runs:
            if run[0].clients != max(args.clients):
                continue
            lines.append(f"  latency, ms, at {run[0].clients} clients, {run[0].rounds} rounds a "
                         f"login: mean, median, 99th percentile (target: median < "
                         f"{MEDIAN_TARGET_MS} ms, p99 < {P99_TARGET_MS} ms)")
            for verb in sorted({v for figures in run for v in figures.latency}):
                row = f"    {verb:<14}"
                for name, figures in zip(names, run, strict=True):
                    mean, median, p99 = _latency(figures.latency.get(verb, []))
                    row += f"{name:>10} {mean:7.1f} {median:7.1f} {p99:7.1f}"
                lines.append(row)
    if "folder" in args.phases:
        lines.append(f"(b) {args.folder_messages} messages: SELECT INBOX, then {HEADERS_FETCH}:")
        for name in names:
            for run, figures in zip(("first", "second"), results[name].folder, strict=True):
                lines.append(
                    f"  {name:<8} {run:<7} SELECT {figures.select * 1000:8.0f} ms   "
                    f"FETCH {figures.fetch * 1000:8.0f} ms ({figures.fetched} messages, "
                    f"{figures.octets / 1e6:.1f} MB)")
    if "idle" in args.phases:
        lines.append(f"(c) {args.connections} sessions logged in, INBOX selected, in IDLE:")
        for name in names:
            idle = results[name].idle
            assert idle is not None
            delta = (idle.after_pss - idle.before_pss) / idle.connections
            if idle.session_processes:
                lines.append(
                    f"  {name:<8} opened in {idle.opening:.1f} s; {idle.session_processes} imap "
                    f"processes, each RSS {_mb(idle.per_session_rss)}, PSS "
                    f"{idle.per_session_pss:.0f} KiB; all its processes: PSS "
                    f"{_mb(idle.before_pss)} with one session, {_mb(idle.after_pss)} with "
                    f"{idle.connections + 1} ({delta:.0f} KiB a session); RSS summed "
                    f"{_mb(idle.after_rss)} (shared pages counted in every process)")
            else:
                target_mb = idle_target_mb(idle.connections)

                def verdict(kib: int, target_mb: int = target_mb) -> str:
                    return "met" if kib < target_mb * 1024 else "NOT met"

                who = ("one process" if args.processes == "1"
                       else f"{args.processes} workers and their supervisor")
                lines.append(
                    f"  {name:<8} opened in {idle.opening:.1f} s; {who}: "
                    f"RSS summed {_mb(idle.before_rss)} with one session, "
                    f"{_mb(idle.after_rss)} with {idle.connections + 1}: "
                    f"{idle.per_session_rss:.1f} KiB a session "
                    f"({_mb(idle.after_rss - idle.before_rss)} for them all); PSS summed "
                    f"{_mb(idle.before_pss)} and {_mb(idle.after_pss)}")
                lines.append(
                    f"  {'':<8} target < {target_mb} MB for the whole server: RSS summed "
                    f"{verdict(idle.after_rss)}, PSS summed {verdict(idle.after_pss)}")
    return lines


def bench_compare(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(BENCH))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * args.connections + 1024
    if soft < wanted:  # inherited by the servers we start
        try:  # as root the hard limit may be raised too
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    clients = max(args.clients) if "load" in args.phases else 0
    users = [(f"user{n}@bench.test", PASSWORD) for n in range(max(clients, 10))]
    spec = [(u, p, args.load_messages) for u, p in users]
    if "folder" in args.phases:
        spec.append((BIG_USER, PASSWORD, args.folder_messages))
    servers = {"ours": lambda tmp: our_server(tmp, spec, args.database_url, args.processes),
               "dovecot": lambda tmp: dovecot_server(tmp, spec)}
    load_before = os.getloadavg()[0]
    results: dict[str, Results] = {}
    for name, start in servers.items():
        if args.only not in (None, name):
            continue
        with tempfile.TemporaryDirectory(prefix=f"bench-imap-{name}-") as tmp:
            print(f"{name}: filling {sum(c for _, _, c in spec)} messages...", flush=True)
            with start(Path(tmp)) as server:
                print(f"{name}: filled in {server.filling:.0f} s", flush=True)
                try:
                    results[name] = measure(server, args, users)
                except BaseException:
                    from daemons import tail

                    for log in server.logs:
                        print(f"--- {log}:\n{tail(log)}", file=sys.stderr)
                    raise
    database = args.database_url or "SQLite (WAL)"
    print()
    print(f"127.0.0.1, {os.cpu_count()} CPUs, load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; ours: mailcore on {database}, "
          f"MAILCORE_PROCESSES={args.processes}; dovecot: "
          f"{_dovecot_version()} maildir, auth cache on; {len(users)} mailboxes of "
          f"{args.load_messages} messages")
    print("\n".join(report(results, args)))


def _dovecot_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return "Dovecot " + subprocess.run(["/usr/sbin/dovecot", "--version"], text=True,
                                           capture_output=True, timeout=10).stdout.split()[0]
    return "Dovecot"


# SEARCH on a big folder (ours only, in-process) -----------------------------------------------

def _django(data_dir: Path) -> None:
    os.environ.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="panel.settings")
    for name in ("DATABASE_URL", "BLOB_DIR"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(PROJECT))
    import django

    django.setup()


def bench_search(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _django(Path(tmp))
        from datetime import UTC, datetime, timedelta

        from django.core.management import call_command

        from mailcore import directory
        from mailcore.imap.parser import parse_command
        from mailcore.models import Blob, Folder, Message
        from mailcore.store import messages
        from mailcore.store import search as store_search
        from mailcore.store.blobs import blob_store

        call_command("migrate", verbosity=0)
        directory.add_domain("bench.test")
        mailbox = directory.add_mailbox(USER, PASSWORD)
        folder = Folder.objects.get(mailbox=mailbox, name="INBOX")
        raw = b"From: sender@remote.test\r\nX-Mailer: bench\r\nSubject: x\r\n\r\nneedle\r\n"
        key = blob_store().put(raw)
        Blob.objects.create(key=key, size=len(raw))
        start = datetime(2024, 1, 1, tzinfo=UTC)
        began = time.perf_counter()
        Message.objects.bulk_create([
            Message(folder=folder, uid=n, blob_id=key, size=500 + (n * 37) % 60000, modseq=n,
                    internal_date=start + timedelta(minutes=10 * n), seen=n % 3 != 0,
                    flagged=n % 97 == 0, subject=f"message {n}", from_addr="sender@remote.test",
                    to_addrs=USER, keywords=["$Work"] if n % 500 == 0 else [])
            for n in range(1, count + 1)], batch_size=2000)
        Folder.objects.filter(pk=folder.pk).update(uidnext=count + 1, highestmodseq=count)
        print(f"inserted {count} messages in {time.perf_counter() - began:.1f}s")
        began = time.perf_counter()
        opened = messages.open_folder(folder.pk)
        print(f"{'SELECT (open_folder)':40} {1000 * (time.perf_counter() - began):8.1f} ms"
              f"  {len(opened.uids)} UIDs, {opened.uids.itemsize * len(opened.uids)} octets")
        for program in PROGRAMS:
            key_tree = parse_command(f"a SEARCH {program}\r\n".encode()).args.key
            began = time.perf_counter()
            found = store_search.search(folder.pk, key_tree, count)
            took = 1000 * (time.perf_counter() - began)
            print(f"{'SEARCH ' + program:40} {took:8.1f} ms  {len(found)} found")


def _processes(text: str) -> str:
    """Return --processes as MAILCORE_PROCESSES takes it: a positive number or "auto"."""
    if text != "auto" and not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError("a positive number or 'auto'")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    compare = sub.add_parser("compare", help="ours beside Dovecot: load, folder, idle")
    idle = sub.add_parser("idle", help="compare --phases idle")
    for command in (compare, idle):
        command.add_argument("--only", choices=("ours", "dovecot"), help="one server only")
        command.add_argument("--connections", type=int, default=1000,
                             help="idle IDLE sessions")
        command.add_argument("--database-url", metavar="postgres://USER@HOST:PORT/NAME",
                             help="ours on this scratch Postgres database (created, then "
                             "dropped); default: SQLite in a temporary folder")
        command.add_argument("--processes", type=_processes, default="1",
                             help="ours: MAILCORE_PROCESSES, worker processes or \"auto\" "
                             "(one per CPU; default 1, as the setting's default)")
    compare.add_argument("--phases", default="load,folder,idle",
                         type=lambda text: set(text.split(",")),
                         help="comma-separated: load, folder, idle")
    compare.add_argument("--clients", type=int, nargs="+", default=[10, 50])
    compare.add_argument("--rounds", type=int, nargs="+", default=[1, 20],
                         help="rounds of the mix a login (1: a login per round)")
    compare.add_argument("--seconds", type=float, default=20.0, help="measured, per run")
    compare.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    compare.add_argument("--load-messages", type=int, default=300,
                         help="messages in each load client's INBOX")
    compare.add_argument("--folder-messages", type=int, default=50_000)
    search = sub.add_parser("search", help="the store's SEARCH on a bulk-inserted folder")
    search.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    if args.what == "search":
        bench_search(args.messages)
        return
    if args.what == "idle":
        args.phases, args.clients, args.rounds, args.load_messages = {"idle"}, [10], [1], 10
    if os.geteuid() != 0 and args.only != "ours":
        raise SystemExit("run as root (Dovecot drops privileges itself), or --only ours")
    # Let a SIGTERM unwind the context managers, so every server we started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    bench_compare(args)


if __name__ == "__main__":
    main()
