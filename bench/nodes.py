"""SMTP delivery and IMAP commands per second from one mailcore node and from two, behind HAProxy.

Both runs go through HAProxy configured from deploy/haproxy.cfg (its binds and server
lines pointed at this run's ports; one server line for one node), so the figures differ
only in the number of nodes. The nodes (127.0.0.2, 127.0.0.3) share one scratch Postgres
database, one Redis and one blob folder, as in production. SMTP: `--messages` messages
over `--concurrency` connections, timed from the first send until the last row is
committed. IMAP: `--clients` logged-in clients each running `--commands` commands (NOOP,
FETCH 1:* FLAGS, STATUS INBOX in turn) over a SELECTed INBOX.

    python bench/nodes.py --database-url postgres://postgres@127.0.0.1/bench_nodes \\
        --redis-url redis://127.0.0.1:6379/15 [--messages 2000] [--clients 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from daemons import daemon, tail, wait_port, wait_ports_file
from load import free_port, rate, smtp_send, wait_for
from ours import ADD_USERS, PROJECT, _environment, _manage, _message_counter, scratch_database

PASSWORD = "secret"
NODE_HOSTS = ("127.0.0.2", "127.0.0.3")
LISTENERS = ("smtp", "imap")  # the listeners measured; the others are off
IMAP_COMMANDS = ("NOOP", "FETCH 1:* FLAGS", "STATUS INBOX (MESSAGES UIDNEXT)")


def node_environment(data_dir: Path, host: str, args: argparse.Namespace) -> dict[str, str]:
    env = _environment(data_dir, args.database_url)
    env.update(
        MAIL_BIND_ADDRESS=host,
        IMAP_PORT="auto",
        POP3_PORT="0",
        TRUSTED_PROXIES="127.0.0.1",  # HAProxy's address as the nodes see it
        REDIS_URL=args.redis_url,
        BLOB_DIR=str(data_dir.parent / "blobs"),  # one blob folder for every node
        MAILCORE_CHANGE_CHANNEL=f"bench:changes:{os.getpid()}",
    )
    return env


def haproxy_config(nodes: Sequence[tuple[str, dict[str, int]]], fronts: dict[str, int]) -> str:
    """Return deploy/haproxy.cfg's SMTP and IMAP sections for these nodes and front ports."""
    out, section, keep = [], "", True
    for line in (PROJECT / "deploy" / "haproxy.cfg").read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            kind, _, section = line.partition(" ")
            keep = kind in ("global", "defaults", "resolvers") or section in LISTENERS
        if not keep:
            continue
        if re.match(r"\s+maxconn \d+$", line):
            line = "    maxconn 4000"
        elif re.match(r'\s+bind "\$\{\w+-:\d+\}"$', line):
            line = f"    bind 127.0.0.1:{fronts[section]}"
        elif server := re.match(r'\s+server mailcore(\d+) ("\$\{[^}]+\}") ', line):
            index = int(server[1]) - 1
            if index >= len(nodes):
                continue
            host, ports = nodes[index]
            line = line.replace(server[2], f"{host}:{ports[section]}")
        elif line.startswith("    log "):
            continue  # one line per connection would cost more than it tells
        out.append(line)
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def cluster(tmp: Path, count: int, args: argparse.Namespace) -> Iterator[dict[str, int]]:
    """Run `count` nodes and HAProxy in front of them; yield HAProxy's ports."""
    with contextlib.ExitStack() as stack:
        nodes = []
        for host in NODE_HOSTS[:count]:
            data_dir = tmp / f"{count}-{host}"
            data_dir.mkdir()
            env = node_environment(data_dir, host, args)
            log = data_dir / "mailcore.log"
            proc = stack.enter_context(daemon([sys.executable, "manage.py", "mailcore"], log,
                                              env=env, cwd=PROJECT))
            nodes.append((host, wait_ports_file(Path(env["MAILCORE_PORTS_FILE"]), proc, log)))
        fronts = {name: free_port() for name in LISTENERS}
        config = tmp / f"haproxy-{count}.cfg"
        config.write_text(haproxy_config(nodes, fronts))
        log = tmp / f"haproxy-{count}.log"
        proc = stack.enter_context(daemon([args.haproxy, "-db", "-f", str(config)], log))
        for port in fronts.values():
            wait_port(port, proc, log)
        yield fronts


class Imap:
    """A minimal IMAP client: tagged commands, responses read up to the tagged line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.tag = reader, writer, 0

    @classmethod
    async def open(cls, port: int, user: str) -> Imap:
        client = cls(*await asyncio.open_connection("127.0.0.1", port, limit=1 << 24))
        if not (await client.reader.readline()).startswith(b"* OK"):
            raise RuntimeError("no IMAP greeting")
        await client.run(f'LOGIN "{user}" "{PASSWORD}"')
        await client.run("SELECT INBOX")
        return client

    async def run(self, command: str) -> None:
        self.tag += 1
        tag = f"b{self.tag}".encode()
        self.writer.write(tag + b" " + command.encode() + b"\r\n")
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{command}: {line!r}")
                return
            if literal := re.search(rb"\{(\d+)\}\r\n$", line):
                await self.reader.readexactly(int(literal[1]))

    async def close(self) -> None:
        with contextlib.suppress(OSError, ConnectionError, RuntimeError):
            await self.run("LOGOUT")
        self.writer.close()


async def imap_load(port: int, users: Sequence[str], clients: int, commands: int
                    ) -> tuple[int, float]:
    """Return (commands answered OK, seconds) for `clients` clients running `commands` each."""
    connections = await asyncio.gather(*(Imap.open(port, users[i % len(users)])
                                         for i in range(clients)))

    async def work(client: Imap) -> int:
        for n in range(commands):
            await client.run(IMAP_COMMANDS[n % len(IMAP_COMMANDS)])
        return commands

    start = time.monotonic()
    done = sum(await asyncio.gather(*(work(client) for client in connections)))
    elapsed = time.monotonic() - start
    await asyncio.gather(*(client.close() for client in connections))
    return done, elapsed


def measure(tmp: Path, count: int, users: Sequence[str], args: argparse.Namespace
            ) -> dict[str, float]:
    with (cluster(tmp, count, args) as fronts,
          _message_counter(tmp, args.database_url) as delivered):
        before = delivered()
        start = time.monotonic()
        sent = smtp_send("127.0.0.1", fronts["smtp"], users, args.messages,
                         args.concurrency, args.size, args.timeout).sent
        accepted = time.monotonic() - start
        wait_for(lambda: delivered() >= before + sent, args.timeout, 0.02)
        visible = time.monotonic() - start
        stored = delivered() - before
        commands, seconds = asyncio.run(imap_load(fronts["imap"], users, args.clients,
                                                  args.commands))
    if sent < args.messages or stored < sent:
        print(f"{count} node(s): {sent} of {args.messages} accepted, {stored} stored; "
              f"see {tmp}", file=sys.stderr)
    return {
        "SMTP accepted (250 after DATA), msgs/s": rate(sent, accepted),
        "SMTP delivered and visible, msgs/s": rate(stored, visible),
        "IMAP commands, cmds/s": rate(commands, seconds),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, metavar="postgres://USER@HOST/NAME",
                        help="a scratch Postgres database, created and dropped by the run "
                             "(names starting with 'test' are refused)")
    parser.add_argument("--reuse-database", action="store_true",
                        help="use --database-url as it is (migrated, mailboxes of a domain of "
                             "this run's own added, nothing dropped) instead of a scratch one")
    parser.add_argument("--redis-url", required=True, metavar="redis://HOST:6379/N")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20, help="SMTP connections")
    parser.add_argument("--size", type=int, default=2048, help="message size, bytes")
    parser.add_argument("--users", type=int, default=10, help="mailboxes (round-robin)")
    parser.add_argument("--clients", type=int, default=20, help="IMAP clients")
    parser.add_argument("--commands", type=int, default=300, help="IMAP commands per client")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per phase")
    parser.add_argument("--haproxy", default=shutil.which("haproxy") or "haproxy")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    domain = f"run{os.getpid()}.bench.test" if args.reuse_database else "bench.test"
    users = [f"user{i}@{domain}" for i in range(args.users)]
    load_before = os.getloadavg()[0]
    with (tempfile.TemporaryDirectory(prefix="bench-nodes-") as name,
          contextlib.nullcontext() if args.reuse_database
          else scratch_database(args.database_url)):
        tmp = Path(name)
        setup = node_environment(tmp / "setup", NODE_HOSTS[0], args)
        (tmp / "setup").mkdir()
        log = tmp / "setup" / "manage.log"
        try:
            _manage(["migrate", "--noinput"], setup, log)
            _manage(["shell", "-c", ADD_USERS.format(users=[(u, PASSWORD) for u in users])],
                    setup, log)
        except RuntimeError:
            print(tail(log), file=sys.stderr)
            raise
        results = {count: measure(tmp, count, users, args) for count in (1, 2)}
    print(f"{args.messages} messages of {args.size} B over {args.concurrency} SMTP connections; "
          f"{args.clients} IMAP clients x {args.commands} commands; {args.users} mailboxes; "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (other work skews rates)")
    print(f"{'':<40} {'1 node':>9} {'2 nodes':>9} {'2/1':>6}")
    for label, one in results[1].items():
        two = results[2][label]
        print(f"{label:<40} {one:9.1f} {two:9.1f} {two / one if one else 0:6.2f}")


if __name__ == "__main__":
    main()
