"""Outbound delivery rate: queued messages delivered per second to a loopback SMTP sink.

Our worker (Celery, as in production) and Postfix (defaults) relay 2 KB messages to the
same fast sink (raw asyncio, its own process, counting), side by side in one run, each on
a throwaway data folder. Target: at least half of Postfix's rate. The figures:

- deliver-only, the queue full before the clock starts. Ours (`--messages`): queued by
  `mailcore.store.delivery.deliver` with the worker notification held back, then
  `deliver_outbound` published in tasks of 20 ids, as `sweep_outbound` hands out a
  backlog, to a running worker. With `--modes single`, also one task per message, as each
  freshly queued message notifies the worker (`--live-messages` of them). Postfix: mail
  held by `defer_transports`, then `postqueue -f`. Timed until the sink has them all.
- queue+deliver (`--modes queue`, `--live-messages`): ours, messages queued one by one,
  each notifying the worker, while it runs; Postfix, `--messages` injected over SMTP
  (10 connections) while it delivers. Timed from the first message in until the last out.

Run as root (Postfix drops privileges itself):

    python bench/outbound.py [--messages 2000] [--workers 2] [--only ours|postfix]
        [--modes batch,single,queue] [--polling-interval 0.01] [--database-url postgres://...]
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
TARGET = 0.5  # ours must reach at least this fraction of Postfix's rate
SENDER = "alice@bench.test"
SINK_DOMAIN = "sink.test"
RECIPIENTS = [f"user{i}@{SINK_DOMAIN}" for i in range(10)]
SWEEP_BATCH = 20  # message ids per deliver_outbound task, as mailcore.tasks.sweep_outbound
# Inherited settings that would point our worker at something other than its data folder.
NOT_INHERITED = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "BLOB_DIR", "SECRET_KEY",
                 "OUTBOUND_SMARTHOST", "OUTBOUND_TRANSPORTS")

# Run by `manage.py shell -c` (the bench folder is a package beside manage.py).
SETUP = """\
from mailcore import directory
directory.add_domain({domain!r})
directory.add_mailbox({sender!r}, "secret")
"""
QUEUE = """\
import time
from bench.load import make_message
from mailcore.store import delivery
rcpts, size, count, notify = {rcpts!r}, {size!r}, {count!r}, {notify!r}
messages = [make_message(i, {sender!r}, rcpts[i % len(rcpts)], size) for i in range(count)]
if not notify:
    delivery._kick = lambda outbound_id: None  # fill the queue; the benchmark publishes
print("START", time.time(), flush=True)
for i, raw in enumerate(messages):
    delivery.deliver(raw, {sender!r}, [], [rcpts[i % len(rcpts)]])
print("QUEUED", time.time(), flush=True)
"""
PUBLISH = """\
import time
from mailcore.models import OutboundRecipient
from mailcore.tasks import deliver_outbound
ids = sorted(set(OutboundRecipient.objects.pending().values_list("message_id", flat=True)))
batch = {batch!r}
print("START", time.time(), flush=True)
for start in range(0, len(ids), batch):
    deliver_outbound.delay(ids[start:start + batch])
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
    if args.polling_interval is not None:
        # What-if: the embedded broker polled more often than kombu's default of 1 s.
        (data_dir / "bench_settings.py").write_text(
            "from panel.settings import *  # noqa: F403\n"
            "CELERY_BROKER_TRANSPORT_OPTIONS['polling_interval'] = "
            f"{args.polling_interval!r}  # noqa: F405\n")
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


@contextlib.contextmanager
def celery_worker(env: dict[str, str], log: Path, workers: int) -> Iterator[None]:
    """One `celery worker` (prefork, `workers` processes) on the embedded broker."""
    argv = [sys.executable, "-m", "celery", "-A", "panel", "worker", "--pool", "prefork",
            "--concurrency", str(workers), "--loglevel", "INFO", "--without-mingle",
            "--without-gossip", "--without-heartbeat"]
    with daemon(argv, log, env=env, cwd=PROJECT) as proc:
        ready = wait_for(lambda: proc.poll() is not None
                         or " ready." in log.read_text(errors="replace"), 60, 0.05)
        if not ready or proc.poll() is not None:
            raise RuntimeError(f"celery worker did not start:\n{tail(log)}")
        yield


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
    "batch": f"ours: deliver-only, tasks of {SWEEP_BATCH} (sweep)",
    "single": "ours: deliver-only, one task per message",
    "queue": "ours: queue+deliver (deliver() + notify)",
}


def run_ours(mode: str, counters: SinkCounters, sink_port: int,
             args: argparse.Namespace) -> Figure:
    """Run one of OUR_MODES on a fresh data folder (and scratch database)."""
    count = args.messages if mode == "batch" else args.live_messages
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-out-")))
        if args.database_url:
            stack.enter_context(scratch_database(args.database_url))
        log = data_dir / "bench.log"
        env = _environment(data_dir, sink_port, args)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                       cwd=PROJECT, env=env, check=True, timeout=args.timeout)
        _manage_shell(SETUP.format(domain="bench.test", sender=SENDER), env, log, args.timeout)
        queue = QUEUE.format(rcpts=RECIPIENTS, size=args.size, count=count,
                             sender=SENDER, notify=mode == "queue")
        if mode != "queue":
            _manage_shell(queue, env, log, args.timeout)
        states = stack.enter_context(queue_counter(data_dir, args.database_url))
        counters.reset()
        with celery_worker(env, data_dir / "worker.log", args.workers):
            if mode == "queue":
                output = _manage_shell(queue, env, log, args.timeout)
                queued = _stamp(output, "QUEUED") - _stamp(output, "START")
                print(report("  (of which queueing alone)", count, queued), file=sys.stderr)
            else:
                batch = SWEEP_BATCH if mode == "batch" else 1
                output = _manage_shell(PUBLISH.format(batch=batch), env, log, args.timeout)
            start = _stamp(output, "START")
            complete = wait_delivered(counters, count, args.timeout)
            # Let the worker record the last outcomes before it is stopped.
            wait_for(lambda: states().get("delivered", 0) >= count, 10, 0.1)
        delivered = counters.messages.value
        seconds = counters.last.value - start
        state = states()
        errors = [line for line in (data_dir / "worker.log").read_text(errors="replace")
                  .splitlines() if " ERROR/" in line or "Traceback" in line]
        complete = (complete and delivered == count and not errors
                    and state == {"delivered": count})
        if not complete:
            print(f"--- {OUR_MODES[mode]}: sink={delivered} queue={state}\n"
                  f"{tail(data_dir / 'worker.log', 40)}", file=sys.stderr)
        return Figure(OUR_MODES[mode], delivered, seconds, complete)


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

def comparison(figures: dict[str, Figure]) -> list[str]:
    pairs = [("batch", "postfix-held"), ("single", "postfix-held"), ("queue", "postfix-live")]
    lines = [f"{'':<46} {'ours':>9} {'postfix':>9} {'ours/pf':>8}  target >= {TARGET:g}x"]
    for ours, theirs in pairs:
        if ours in figures and theirs in figures:
            a, b = figures[ours], figures[theirs]
            ratio = a.rate / b.rate if b.rate else 0.0
            verdict = "met" if ratio >= TARGET else "NOT met"
            label = a.label.removeprefix("ours: ")
            lines.append(f"{label:<46} {a.rate:9.1f} {b.rate:9.1f} {ratio:8.2f}  {verdict}")
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000,
                        help="messages to deliver (Postfix, and ours in tasks of 20)")
    parser.add_argument("--live-messages", type=int, default=300,
                        help="messages for our one-task-per-message modes (single, queue)")
    parser.add_argument("--size", type=int, default=2048, help="message size, bytes")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="our Celery worker processes (prefork); default: CPUs")
    parser.add_argument("--inject-connections", type=int, default=10,
                        help="SMTP connections injecting into Postfix")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per phase")
    parser.add_argument("--only", choices=("ours", "postfix"), help="run one server only")
    parser.add_argument("--modes", default="batch,queue",
                        help="our modes, comma-separated: batch, single, queue")
    parser.add_argument("--polling-interval", type=float, metavar="SECONDS",
                        help="what-if: our embedded broker's polling interval "
                        "(kombu's default: 1 s)")
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
    polling = args.polling_interval if args.polling_interval is not None else "the settings'"
    database = urlsplit(args.database_url).path.lstrip("/") if args.database_url else "SQLite"
    print(f"ours: Celery prefork x{args.workers}, filesystem broker polled every {polling} s, "
          f"{database}; postfix: defaults (20 connections per destination)")
    for figure in figures.values():
        mark = "" if figure.complete else "  INCOMPLETE"
        print(report(figure.label, figure.delivered, figure.seconds) + mark)
    if args.only is None:
        print()
        print("\n".join(comparison(figures)))
    incomplete = [f.label for f in figures.values() if not f.complete]
    if incomplete:
        raise SystemExit(f"incomplete: {', '.join(incomplete)}")


if __name__ == "__main__":
    main()
