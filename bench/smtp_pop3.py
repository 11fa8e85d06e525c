"""Delivery and POP3 download rates of our mailcore beside Postfix -> Dovecot, on this machine.

Both servers get the same load: `--messages` messages of `--size` bytes sent over
`--concurrency` SMTP connections round-robin to `--users` mailboxes, timed from the first
send until the last message is stored and visible (a maildir file for Dovecot, a committed
row for mailcore); then every mailbox is downloaded over POP3 (LIST, RETR all, QUIT).
Run as root (the reference daemons drop privileges themselves):

    python bench/smtp_pop3.py --messages 3000 [--database-url postgres://...] [--only ours]
        [--processes N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from daemons import tail
from load import DownloadResult, free_port, pop3_download, rate, report, smtp_send, wait_for
from ours import mailcore
from reference import postfix_dovecot

PASSWORD = "secret"
# The fraction of the reference's rate each row must reach. Postfix answers 250 once the
# message is in its queue, before Dovecot has it; we answer once it is in the mailbox, so
# the 250 row is held to less than the reference's and the delivered row to all of it.
TARGETS = {
    "SMTP accepted (250 after DATA), msgs/s": 0.8,
    "delivered and visible, msgs/s": 1.0,
    "POP3 download, msgs/s": 1.0,
    "POP3 download, MB/s": 1.0,
}


class MailServer(Protocol):
    host: str
    smtp_port: int | None
    pop3_port: int

    @property
    def logs(self) -> list[Path]: ...

    def delivered(self) -> int: ...


@dataclass
class Figures:
    accepted: int  # 250 after DATA
    accepting: float  # seconds, first send to last 250
    delivered: int
    delivering: float  # seconds, first send to last message visible
    download: DownloadResult
    complete: bool
    cpu: tuple[float, float] | None = None  # server CPU seconds: sending, downloading

    def rates(self) -> dict[str, float]:
        """The compared figures, by row label."""
        return {
            "SMTP accepted (250 after DATA), msgs/s": rate(self.accepted, self.accepting),
            "delivered and visible, msgs/s": rate(self.delivered, self.delivering),
            "POP3 download, msgs/s": rate(self.download.messages, self.download.elapsed),
            "POP3 download, MB/s": rate(self.download.octets, self.download.elapsed) / 1e6,
        }

    def lines(self, name: str) -> list[str]:
        lines = [
            report(f"{name}: SMTP accepted (250 after DATA)", self.accepted, self.accepting),
            report(f"{name}: delivered, first send to last", self.delivered, self.delivering),
            report(f"{name}: POP3 RETR all, no DELE", self.download.messages,
                   self.download.elapsed, self.download.octets),
        ]
        if self.cpu is not None and self.delivered and self.download.messages:
            # Less skewed by other work on the machine than the rates.
            sending = 1000 * self.cpu[0] / self.delivered
            downloading = 1000 * self.cpu[1] / self.download.messages
            lines.append(f"{name}: server CPU (user+sys) {sending:.2f} ms a delivered message, "
                         f"{downloading:.3f} ms a downloaded one")
        return lines


def measure(server: MailServer, users: Sequence[tuple[str, str]],
            args: argparse.Namespace) -> Figures:
    """Warm up, send the load, wait until it is all visible, then download every mailbox."""
    rcpts = [user for user, _ in users]

    def send(count: int) -> int:
        return smtp_send(server.host, server.smtp_port or 0, rcpts, count,
                         args.concurrency, args.size, args.timeout).sent

    # Warm-up: worker processes spawned, database connections opened, code paths taken.
    warm = send(2 * args.concurrency)
    wait_for(lambda: server.delivered() >= warm, args.timeout)
    before = server.delivered()
    pid = getattr(server, "pid", None)
    cpu_start = cpu_seconds(pid)
    start = time.monotonic()
    sent = send(args.messages)
    accepting = time.monotonic() - start
    visible = wait_for(lambda: server.delivered() >= before + sent, args.timeout, 0.02)
    delivering = time.monotonic() - start
    delivered = server.delivered() - before
    cpu_sent = cpu_seconds(pid)
    download = pop3_download(server.host, server.pop3_port, users, args.concurrency,
                             args.timeout)
    cpu_downloaded = cpu_seconds(pid)
    complete = (visible and sent == args.messages
                and download.messages == before + delivered)
    if not complete:  # quote the logs now: they go with the server's tmpdir
        for log in server.logs:
            print(f"--- {log}:\n{tail(log)}", file=sys.stderr)
    cpu = None if pid is None else (cpu_sent - cpu_start, cpu_downloaded - cpu_sent)
    return Figures(sent, accepting, delivered, delivering, download, complete, cpu)


def cpu_seconds(pid: int | None) -> float:
    """Return the user+sys seconds a process and its children (workers) have used."""
    if pid is None:
        return 0.0
    total = 0.0
    for task in [pid, *_children(pid)]:
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    with contextlib.suppress(FileNotFoundError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def run_ours(users: Sequence[tuple[str, str]], args: argparse.Namespace) -> Figures:
    with (
        tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp,
        mailcore(tmp, users, args.database_url,
                 settings={"MAILCORE_PROCESSES": str(args.processes)}) as server,
    ):
        return measure(server, users, args)


def run_reference(users: Sequence[tuple[str, str]], args: argparse.Namespace) -> Figures:
    with (
        tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp,
        postfix_dovecot(tmp, free_port(), free_port(), users=users) as server,
    ):
        return measure(server, users, args)


def database_label(url: str | None) -> str:
    if not url:
        return "SQLite (WAL, synced before each 250)"
    parts = urlsplit(url)
    return f"Postgres {parts.hostname}:{parts.port or 5432}{parts.path}"


def comparison(ours: Figures, ref: Figures) -> list[str]:
    """The table: each rate for both servers, ours/reference, and the target verdict.

    The reference is Postfix for the 250 row, Postfix -> Dovecot for delivery, Dovecot
    for POP3.
    """
    head = f"{'':<40} {'ours':>9} {'reference':>10} {'ours/ref':>9}  {'target':>7}"
    lines = [head]
    ref_rates = ref.rates()
    for label, value in ours.rates().items():
        ratio = value / ref_rates[label] if ref_rates[label] else 0.0
        target = TARGETS[label]
        verdict = "met" if ratio >= target else "NOT met"
        lines.append(f"{label:<40} {value:9.1f} {ref_rates[label]:10.1f} {ratio:9.2f}  "
                     f">= {target:g}x {verdict}")
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000, help="messages to send")
    parser.add_argument("--concurrency", type=int, default=10, help="connections")
    parser.add_argument("--size", type=int, default=2048, help="message size, bytes")
    parser.add_argument("--users", type=int, default=10, help="mailboxes (round-robin)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per phase")
    parser.add_argument("--only", choices=("ours", "reference"), help="run one server only")
    parser.add_argument("--processes", type=int, default=1,
                        help="our MAILCORE_PROCESSES (Postfix and Dovecot use every core)")
    parser.add_argument(
        "--database-url", metavar="postgres://USER@HOST:PORT/NAME",
        help="run ours on this scratch Postgres database (created, then dropped; "
        "names starting with 'test' are refused); default: SQLite in a temporary folder",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # Let a SIGTERM unwind the context managers, so every server we started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    users = [(f"user{i}@bench.test", PASSWORD) for i in range(args.users)]
    runs: dict[str, Callable[[Sequence[tuple[str, str]], argparse.Namespace], Figures]] = {
        "ours": run_ours,
        "reference": run_reference,
    }
    load_before = os.getloadavg()[0]
    results = {name: run(users, args) for name, run in runs.items()
               if args.only in (None, name)}

    print(f"{args.messages} messages of {args.size} B, {args.concurrency} connections, "
          f"{args.users} mailboxes, 127.0.0.1; {os.cpu_count()} CPUs, load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other work skews rates)")
    servers = {"ours": f"mailcore on {database_label(args.database_url)}, "
                       f"MAILCORE_PROCESSES={args.processes}",
               "reference": "Postfix -> Dovecot LMTP, maildir"}
    print("; ".join(f"{name}: {servers[name]}" for name in results))
    for name, figures in results.items():
        print("\n".join(figures.lines(name)))
    if len(results) == 2:
        print()
        print("\n".join(comparison(results["ours"], results["reference"])))
    incomplete = [name for name, figures in results.items() if not figures.complete]
    if incomplete:
        raise SystemExit(f"incomplete run ({', '.join(incomplete)}): raise --timeout "
                         "or check the server logs")


if __name__ == "__main__":
    main()
