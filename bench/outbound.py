"""Outbound delivery rate: queued messages delivered per second to a loopback SMTP sink.

Our worker (Celery, as in production) and Postfix (defaults) relay 2 KB messages to the
same fast sink (raw asyncio, its own process, counting), side by side in one run, each on
a throwaway data folder. The figures:

- deliver-only, the queue full before the clock starts. Ours (`--messages`): queued by
  `mailcore.store.delivery.deliver` with the worker wake-up held back, then one
  `drain_outbound` published, as the periodic sweep does for a backlog, to a running
  worker. With `--modes single`, one `deliver_outbound` task per message instead, as each
  queued message asked before drains (`--live-messages` of them, as that is slow).
  Postfix: mail held by `defer_transports`, then `postqueue -f`. Timed until the sink has them all.
- queue+deliver (`--modes queue`, `--messages`): ours, messages queued one at a
  time by `--inject-connections` threads at once, each message waking the worker, while
  it runs; Postfix, `--messages` injected over SMTP (as many connections) while it
  delivers. Timed from the first message in until the last out.

The worker's CPU time (all its processes, from /proc) per message is printed beside ours.

Run as root (Postfix drops privileges itself):

    python bench/outbound.py [--messages 2000] [--workers 2] [--only ours|postfix]
        [--modes batch,single,queue] [--polling-interval 0.01] [--database-url postgres://...]
        [--broker-url redis://127.0.0.1:6379/3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from daemons import HOST, daemon, tail
from load import free_port, rate, report, smtp_send, wait_for
from ours import scratch_database
from reference import postfix_relay

PROJECT = Path(__file__).resolve().parent.parent
SENDER = "alice@bench.test"
SINK_DOMAIN = "sink.test"
RECIPIENTS = [f"user{i}@{SINK_DOMAIN}" for i in range(10)]
# Inherited settings that would point our worker at something other than its data folder.
NOT_INHERITED = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "BLOB_DIR", "SECRET_KEY",
                 "OUTBOUND_SMARTHOST", "OUTBOUND_TRANSPORTS")

# Run by `manage.py shell -c` (the bench folder is a package beside manage.py).
SETUP = """\
from mailcore import directory
directory.add_domain({domain!r})
directory.add_mailbox({sender!r}, "secret")
"""
# Messages are queued by `threads` threads at once (each with its database connection, as
# mailcore's pool), as Postfix gets them over --inject-connections SMTP connections.
QUEUE = """\
import threading, time
from django.db import connection
from bench.load import make_message
from mailcore.store import delivery
rcpts, size, count, notify = {rcpts!r}, {size!r}, {count!r}, {notify!r}
messages = [make_message(i, {sender!r}, rcpts[i % len(rcpts)], size) for i in range(count)]
if not notify:
    delivery._kick = lambda outbound_id: None  # fill the queue; the benchmark publishes
jobs = iter(range(count))
lock = threading.Lock()
def queue():
    while True:
        with lock:
            i = next(jobs, None)
        if i is None:
            break
        delivery.deliver(messages[i], {sender!r}, [], [rcpts[i % len(rcpts)]])
    connection.close()
threads = [threading.Thread(target=queue) for _ in range({threads!r})]
print("START", time.time(), flush=True)
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("QUEUED", time.time(), flush=True)
"""
# A backlog: one drain, as the periodic sweep (or the first wake-up) starts it.
DRAIN = """\
import time
from mailcore.tasks import drain_outbound
print("START", time.time(), flush=True)
drain_outbound.delay()
print("PUBLISHED", time.time(), flush=True)
"""
# What the workers were asked before drain_outbound: a task for every queued message.
PUBLISH = """\
import time
from mailcore.models import OutboundRecipient
from mailcore.tasks import deliver_outbound
ids = sorted(set(OutboundRecipient.objects.pending().values_list("message_id", flat=True)))
print("START", time.time(), flush=True)
for outbound_id in ids:
    deliver_outbound.delay([outbound_id])
print("PUBLISHED", len(ids), time.time(), flush=True)
"""


# The sink ----------------------------------------------------------------------------------

@dataclass
class SinkCounters:
    """Shared with the sink process: messages accepted, and the wall time of the last one."""

    messages: ctypes.c_long
    last: ctypes.c_double

    @classmethod
    def create(cls) -> SinkCounters:
        return cls(multiprocessing.Value(ctypes.c_long, 0, lock=False),
                   multiprocessing.Value(ctypes.c_double, 0.0, lock=False))

    def reset(self) -> None:
        self.messages.value = 0
        self.last.value = 0.0


class _SinkProtocol(asyncio.Protocol):
    """Accept every transaction (RFC 5321, with PIPELINING); count messages, keep nothing."""

    def __init__(self, counters: SinkCounters) -> None:
        self.counters = counters
        self.buffer = b""
        self.in_data = False
        self.scanned = 0  # bytes of buffer already searched for the end of DATA
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 sink.bench ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n", max(self.scanned - 4, 0))
                if end < 0:
                    self.scanned = len(self.buffer)
                    break
                self.buffer = self.buffer[end + 5:]
                self.in_data = False
                self.counters.messages.value += 1
                self.counters.last.value = time.time()
                replies.append(b"250 2.0.0 Ok: queued\r\n")
                continue
            line, found, rest = self.buffer.partition(b"\r\n")
            if not found:
                break
            self.buffer = rest
            verb = line[:4].upper()
            if verb == b"EHLO":
                replies.append(b"250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                               b"250 SIZE 104857600\r\n")
            elif verb == b"DATA":
                replies.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                # The CRLF before the first line lets an empty body end the same way.
                self.buffer, self.scanned, self.in_data = b"\r\n" + self.buffer, 0, True
            elif verb == b"QUIT":
                replies.append(b"221 2.0.0 Bye\r\n")
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
            elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                replies.append(b"250 2.0.0 Ok\r\n")
            else:
                replies.append(b"502 5.5.2 Error: command not recognized\r\n")
        if replies:
            self.transport.write(b"".join(replies))


def _serve_sink(listening: socket.socket, counters: SinkCounters) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _SinkProtocol(counters), sock=listening)
        await server.serve_forever()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(serve())


@contextlib.contextmanager
def sink() -> Iterator[tuple[SinkCounters, int]]:
    """A fast SMTP sink in its own process, on a HOST port bound here: (counters, port)."""
    counters = SinkCounters.create()
    listening = socket.create_server((HOST, 0), backlog=1024)
    port = listening.getsockname()[1]
    process = multiprocessing.get_context("fork").Process(
        target=_serve_sink, args=(listening, counters), daemon=True)
    process.start()
    listening.close()  # the child serves its copy
    try:
        if not wait_for(lambda: _accepts(port), 10, 0.05):
            raise RuntimeError("the sink did not start")
        yield counters, port
    finally:
        process.terminate()
        process.join(10)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), 1) as conn:
            conn.recv(100)
        return True
    except OSError:
        return False


# Results -----------------------------------------------------------------------------------

@dataclass
class Figure:
    label: str
    delivered: int
    seconds: float
    complete: bool
    cpu: float | None = None  # the worker's CPU seconds (all its processes), ours only
    tasks: int | None = None  # Celery tasks our worker ran, ours only

    @property
    def rate(self) -> float:
        return rate(self.delivered, self.seconds)


def wait_delivered(counters: SinkCounters, expected: int, timeout: float) -> bool:
    return wait_for(lambda: counters.messages.value >= expected, timeout, 0.01)


# Ours --------------------------------------------------------------------------------------

def _environment(data_dir: Path, sink_port: int, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(
        DJANGO_SETTINGS_MODULE="panel.settings",
        DATA_DIR=str(data_dir),
        CELERY_BROKER_URL="filesystem://",
        MAIL_HOSTNAME="mx.bench.test",
        OUTBOUND_TRANSPORTS=f"{SINK_DOMAIN}={HOST}:{sink_port}",
        DNS_RESOLVER=f"{HOST}:1",  # nothing else may be looked up
        DEBUG="0",  # as in production: DEBUG keeps and times every query
        SITE_URL="http://127.0.0.1:8000", SECRET_KEY="bench-only-" + "x" * 50,
        LOG_LEVEL="INFO",
    )
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    overrides = []
    if args.broker_url:
        # As in production (docker-compose.yml): Redis is the broker and the cache.
        env["CELERY_BROKER_URL"] = env["REDIS_URL"] = args.broker_url
        # A queue of this run's own, so that tasks left in a shared Redis by an earlier
        # run (or another mode) are not taken.
        overrides.append(f"CELERY_TASK_DEFAULT_QUEUE = {data_dir.name!r}")
    if args.polling_interval is not None:
        # What-if: the embedded broker polled at another interval than the settings'.
        overrides.append("CELERY_BROKER_TRANSPORT_OPTIONS['polling_interval'] = "
                         f"{args.polling_interval!r}  # noqa: F405")
    if overrides:
        (data_dir / "bench_settings.py").write_text(
            "from panel.settings import *  # noqa: F403\n" + "\n".join(overrides) + "\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(data_dir),
                                                          env.get("PYTHONPATH")]))
        env["DJANGO_SETTINGS_MODULE"] = "bench_settings"
    return env


def _manage_shell(script: str, env: dict[str, str], log: Path, timeout: float) -> str:
    """Run a script in `manage.py shell`; return its output (raise, quoting the log)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=PROJECT, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False,
    )
    with log.open("a") as out:
        out.write(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"manage.py shell failed ({done.returncode}):\n{tail(log)}")
    return done.stdout


def _stamp(output: str, word: str) -> float:
    return float(next(line.split()[-1] for line in output.splitlines()
                      if line.startswith(word + " ")))


def session_cpu(sid: int) -> float:
    """Return the user+system CPU seconds of every live process in session sid so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


@contextlib.contextmanager
def celery_worker(env: dict[str, str], log: Path, workers: int, profile: str = ""
                  ) -> Iterator[subprocess.Popen[bytes]]:
    """One `celery worker` (prefork, `workers` processes) on the configured broker."""
    argv = [sys.executable, "-m", "celery", "-A", "panel", "worker", "--pool", "prefork",
            "--concurrency", str(workers), "--loglevel", "INFO", "--without-mingle",
            "--without-gossip", "--without-heartbeat"]
    if profile:
        # Sample every worker process, waiting too (--idle): where the wall time goes.
        argv = ["py-spy", "record", "--subprocesses", "--idle", "--format", "raw", "--rate", "250",
                "-o", profile, "--", *argv]
    with daemon(argv, log, env=env, cwd=PROJECT) as proc:
        ready = wait_for(lambda: proc.poll() is not None
                         or " ready." in log.read_text(errors="replace"), 60, 0.05)
        if not ready or proc.poll() is not None:
            raise RuntimeError(f"celery worker did not start:\n{tail(log)}")
        yield proc


@contextlib.contextmanager
def queue_counter(data_dir: Path, database_url: str | None) -> Iterator[Callable[[], dict]]:
    """A function returning {state: recipients} of our queue, over a connection of our own."""
    if database_url:
        import psycopg

        conn = psycopg.connect(database_url, autocommit=True, connect_timeout=10)
    else:
        conn = sqlite3.connect(data_dir / "db.sqlite3", timeout=30)
    try:
        yield lambda: dict(conn.execute("SELECT state, count(*) FROM mailcore_outboundrecipient "
                                        "GROUP BY state").fetchall())
    finally:
        conn.close()


OUR_MODES = {
    "batch": "ours: deliver-only (drain, as the sweep)",
    "single": "ours: deliver-only, one task per message (old)",
    "queue": "ours: queue+deliver (deliver() + wake-up)",
}


def run_ours(mode: str, counters: SinkCounters, sink_port: int,
             args: argparse.Namespace) -> Figure:
    """Run one of OUR_MODES on a fresh data folder (and scratch database)."""
    count = args.live_messages if mode == "single" else args.messages
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-out-")))
        if args.database_url:
            stack.enter_context(scratch_database(args.database_url))
        log = data_dir / "bench.log"
        env = _environment(data_dir, sink_port, args)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                       cwd=PROJECT, env=env, check=True, timeout=args.timeout)
        _manage_shell(SETUP.format(domain="bench.test", sender=SENDER), env, log, args.timeout)
        queue = QUEUE.format(rcpts=RECIPIENTS, size=args.size, count=count, sender=SENDER,
                             notify=mode == "queue", threads=args.inject_connections)
        if mode != "queue":
            output = _manage_shell(queue, env, log, args.timeout)
            # What queue+deliver cannot beat: queueing alone, no worker running.
            queued = _stamp(output, "QUEUED") - _stamp(output, "START")
            print(report("  (queueing alone, no worker running)", count, queued),
                  file=sys.stderr)
        states = stack.enter_context(queue_counter(data_dir, args.database_url))
        counters.reset()
        profile = f"{args.py_spy}-{mode}.txt" if args.py_spy else ""
        with celery_worker(env, data_dir / "worker.log", args.workers, profile) as worker:
            cpu_before = session_cpu(worker.pid)
            if mode == "queue":
                output = _manage_shell(queue, env, log, args.timeout)
                queued = _stamp(output, "QUEUED") - _stamp(output, "START")
                print(report("  (of which queueing, worker running)", count, queued),
                      file=sys.stderr)
            else:
                output = _manage_shell(DRAIN if mode == "batch" else PUBLISH, env, log,
                                       args.timeout)
            start = _stamp(output, "START")
            complete = wait_delivered(counters, count, args.timeout)
            # Let the worker record the last outcomes before it is stopped.
            wait_for(lambda: states().get("delivered", 0) >= count, 10, 0.1)
            cpu = session_cpu(worker.pid) - cpu_before
            if profile:  # py-spy writes its profile on SIGINT, not on SIGTERM
                worker.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(60)
        delivered = counters.messages.value
        seconds = counters.last.value - start
        state = states()
        worker_log = (data_dir / "worker.log").read_text(errors="replace").splitlines()
        errors = [line for line in worker_log if " ERROR/" in line or "Traceback" in line]
        tasks = sum(" succeeded in " in line for line in worker_log)
        complete = (complete and delivered == count and not errors
                    and state == {"delivered": count})
        if not complete:
            print(f"--- {OUR_MODES[mode]}: sink={delivered} queue={state}\n"
                  f"{tail(data_dir / 'worker.log', 40)}", file=sys.stderr)
        return Figure(OUR_MODES[mode], delivered, seconds, complete, cpu, tasks)


# Postfix -----------------------------------------------------------------------------------

def run_postfix(held: bool, counters: SinkCounters, sink_port: int,
                args: argparse.Namespace) -> list[Figure]:
    """Postfix relaying to the sink: held then flushed, or delivering while injected."""
    with tempfile.TemporaryDirectory(prefix="bench-postfix-") as tmp:
        smtp_port = free_port()
        with postfix_relay(tmp, smtp_port, sink_port, held=held) as relay:
            counters.reset()
            start = time.time()
            sent = smtp_send(HOST, smtp_port, RECIPIENTS, args.messages, args.inject_connections,
                             args.size, args.timeout, sender=SENDER)
            if held:
                wait_for(lambda: relay.queued("deferred") >= sent.sent
                         and relay.queued("maildrop", "incoming", "active") == 0,
                         args.timeout, 0.05)
                assert counters.messages.value == 0, "held mail was delivered"
                start = time.time()
                relay.flush()
            complete = wait_delivered(counters, args.messages, args.timeout)
            seconds = counters.last.value - start
            delivered = counters.messages.value
            wait_for(lambda: relay.queued() == 0, 10, 0.05)  # qmgr removes each after its 250
            left = relay.queued()
            complete = complete and sent.sent == delivered == args.messages and left == 0
            if not complete:
                for log in relay.logs:
                    print(f"--- {log}:\n{tail(log)}", file=sys.stderr)
        if held:
            return [Figure("postfix: deliver-only (defer_transports, postqueue -f)",
                           delivered, seconds, complete)]
        return [Figure("postfix: SMTP inject (250 after DATA)", sent.sent, sent.elapsed,
                       sent.sent == args.messages),
                Figure("postfix: inject+deliver (first send to last at sink)",
                       delivered, seconds, complete)]


# Report ------------------------------------------------------------------------------------

def targets(args: argparse.Namespace) -> dict[str, float]:
    """Return the fraction of Postfix's rate each of our modes must reach."""
    # The embedded broker (files polled) and SQLite (one writer) are for one small machine.
    return {"batch": 1.0, "single": 0.5, "queue": 1.0 if args.broker_url else 0.5}


def comparison(figures: dict[str, Figure], args: argparse.Namespace) -> list[str]:
    pairs = [("batch", "postfix-held"), ("single", "postfix-held"), ("queue", "postfix-live")]
    lines = [f"{'':<46} {'ours':>9} {'postfix':>9} {'ours/pf':>8}  target"]
    for ours, theirs in pairs:
        if ours in figures and theirs in figures:
            a, b = figures[ours], figures[theirs]
            ratio = a.rate / b.rate if b.rate else 0.0
            target = targets(args)[ours]
            verdict = "met" if ratio >= target else "NOT met"
            label = a.label.removeprefix("ours: ")
            lines.append(f"{label:<46} {a.rate:9.1f} {b.rate:9.1f} {ratio:8.2f}  "
                         f">= {target:g}x {verdict}")
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000,
                        help="messages to deliver (Postfix, and ours deliver-only)")
    parser.add_argument("--live-messages", type=int, default=300,
                        help="messages for our old one-task-per-message mode (single)")
    parser.add_argument("--size", type=int, default=2048, help="message size, bytes")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="our Celery worker processes (prefork); default: CPUs")
    parser.add_argument("--inject-connections", type=int, default=10,
                        help="SMTP connections injecting into Postfix; threads queueing "
                        "into ours (queue+deliver)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per phase")
    parser.add_argument("--only", choices=("ours", "postfix"), help="run one server only")
    parser.add_argument("--modes", default="batch,queue",
                        help="our modes, comma-separated: batch, single, queue")
    parser.add_argument("--broker-url", metavar="redis://HOST:PORT/DB",
                        help="our Celery broker (and cache, as in production): Redis; "
                        "default: the embedded filesystem broker")
    parser.add_argument("--polling-interval", type=float, metavar="SECONDS",
                        help="what-if: our embedded broker's polling interval "
                        "(kombu's default: 1 s)")
    parser.add_argument("--py-spy", metavar="PREFIX",
                        help="profile our worker with py-spy (on PATH): collapsed stacks "
                        "to PREFIX-MODE.txt (its CPU figure then includes py-spy's)")
    parser.add_argument(
        "--database-url", metavar="postgres://USER@HOST:PORT/NAME",
        help="run ours on this scratch Postgres database (created, then dropped; "
        "names starting with 'test' are refused); default: SQLite in a temporary folder",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # Let a SIGTERM unwind the context managers, so every process we started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    figures: dict[str, Figure] = {}
    with sink() as (counters, sink_port):
        if args.only in (None, "postfix"):
            figures["postfix-inject"], figures["postfix-live"] = run_postfix(
                False, counters, sink_port, args)
            [figures["postfix-held"]] = run_postfix(True, counters, sink_port, args)
        if args.only in (None, "ours"):
            for mode in args.modes.split(","):
                figures[mode] = run_ours(mode.strip(), counters, sink_port, args)

    print(f"{args.messages} messages of {args.size} B to {len(RECIPIENTS)} recipients at one "
          f"domain, loopback sink on {HOST}; {os.cpu_count()} CPUs")
    polling = (f"{args.polling_interval} s" if args.polling_interval is not None
               else "as the settings say")
    database = urlsplit(args.database_url).path.lstrip("/") if args.database_url else "SQLite"
    broker = (f"broker {urlsplit(args.broker_url).scheme}" if args.broker_url
              else f"filesystem broker polled {polling}")
    print(f"ours: Celery prefork x{args.workers}, {broker}, "
          f"{database}; postfix: defaults (20 connections per destination)")
    for figure in figures.values():
        mark = "" if figure.complete else "  INCOMPLETE"
        cpu = (f"  worker CPU {1000 * figure.cpu / figure.delivered:.2f} ms/msg, "
               f"{figure.tasks} tasks" if figure.cpu is not None and figure.delivered else "")
        print(report(figure.label, figure.delivered, figure.seconds) + cpu + mark)
    if args.only is None:
        print()
        print("\n".join(comparison(figures, args)))
    incomplete = [f.label for f in figures.values() if not f.complete]
    if incomplete:
        raise SystemExit(f"incomplete: {', '.join(incomplete)}")


if __name__ == "__main__":
    main()
