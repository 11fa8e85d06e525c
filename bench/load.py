"""Generic SMTP and POP3 load generators (asyncio, raw sockets) for any mail server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

T = TypeVar("T")
MAX_SESSION_FAILURES = 3  # consecutive broken sessions (no progress) before a worker quits
READ_LIMIT = 1 << 24  # StreamReader buffer limit, large enough for any benchmark message


class SendResult(NamedTuple):
    sent: int
    elapsed: float


class DownloadResult(NamedTuple):
    messages: int
    octets: int
    elapsed: float


class ProtocolError(Exception):
    """The server answered something unexpected."""


# A session ending with one of these counts as failed; the load generator carries on.
SESSION_ERRORS = (
    OSError,
    EOFError,
    TimeoutError,
    ValueError,
    asyncio.LimitOverrunError,
    ProtocolError,
)


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on `host`, for Postfix and Dovecot, which cannot report the port they got.

    Our own servers listen on "auto" ports and report them (MAILCORE_PORTS_FILE); the race
    here (the port is free when this socket closes) costs a failed start, loudly.
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def make_message(index: int, sender: str, rcpt: str, size: int = 2048) -> bytes:
    """A message of about `size` bytes, CRLF line endings, no line starting with '.'."""
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    head = (
        f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: benchmark message {index}\r\n"
        f"Message-ID: <bench.{index}.{time.monotonic_ns()}@load.bench>\r\n"
        f"Date: {date}\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    full, rest = divmod(max(size - len(head), 2), len(line))
    tail = b"y" * max(rest - 2, 0) + b"\r\n" if rest else b""
    return head + line * full + tail


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll `predicate` until true (-> True) or `timeout` seconds pass (-> False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def report(
    label: str,
    count: int,
    seconds: float,
    octets: int | None = None,
    unit: str = "msgs",
) -> str:
    """One aligned line: `label   2000 msgs in 1.23 s =  1626.0 msgs/s (3.3 MB/s)`."""
    per_second = f"{rate(count, seconds):9.1f} {unit}/s"
    line = f"{label:<46} {count:>7} {unit} in {seconds:7.2f} s = {per_second}"
    if octets is not None:
        line += f" ({rate(octets, seconds) / 1e6:.1f} MB/s)"
    return line


async def _within(awaitable: Awaitable[T], deadline: float) -> T:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return await asyncio.wait_for(awaitable, remaining)


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    deadline: float

    @classmethod
    async def open(cls, host: str, port: int, deadline: float) -> _Connection:
        connecting = asyncio.open_connection(host, port, limit=READ_LIMIT)
        return cls(*await _within(connecting, deadline), deadline)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def readline(self) -> bytes:
        return await _within(self.reader.readline(), self.deadline)

    async def smtp_reply(self) -> int:
        while True:
            line = await self.readline()
            if len(line) < 4 or not line[:3].isdigit():
                raise ProtocolError(f"bad SMTP reply {line!r}")
            if line[3:4] != b"-":
                return int(line[:3])

    async def smtp(self, command: str) -> int:
        self.writer.write(command.encode() + b"\r\n")
        return await self.smtp_reply()

    async def pop3(self, command: str | None = None) -> bytes:
        """Send `command` (None: just read the greeting) and expect a +OK line."""
        if command is not None:
            self.writer.write(command.encode() + b"\r\n")
        line = await self.readline()
        if not line.startswith(b"+OK"):
            raise ProtocolError(f"POP3 error {line!r}")
        return line

    async def pop3_multiline(self) -> bytes:
        """Rest of a multi-line POP3 response, including the terminating '.' line."""
        data = b""
        while data != b".\r\n" and not data.endswith(b"\r\n.\r\n"):
            data += await _within(self.reader.readuntil(b".\r\n"), self.deadline)
        return data


@dataclass
class _SmtpWorker:
    host: str
    port: int
    rcpts: Sequence[str]
    sender: str
    size: int
    jobs: Iterator[int]  # shared by all workers: each message index is taken once
    deadline: float
    transform: Callable[[bytes], bytes] | None = None  # e.g. DKIM-sign each message
    sent: int = field(default=0, init=False)

    async def run(self) -> None:
        """Sessions until the jobs run out, reconnecting after a broken session."""
        failures = 0
        while failures <= MAX_SESSION_FAILURES and time.monotonic() < self.deadline:
            before = self.sent
            try:
                await self.session()
                return
            except SESSION_ERRORS:
                failures = 0 if self.sent > before else failures + 1

    async def session(self) -> None:
        conn = await _Connection.open(self.host, self.port, self.deadline)
        try:
            if await conn.smtp_reply() != 220:
                raise ProtocolError("no 220 greeting")
            if await conn.smtp("EHLO load.bench") != 250:
                raise ProtocolError("EHLO refused")
            for index in self.jobs:
                if await self.transaction(conn, index):
                    self.sent += 1
                elif await conn.smtp("RSET") != 250:
                    raise ProtocolError("RSET refused")
                if time.monotonic() >= self.deadline:
                    break
            with contextlib.suppress(*SESSION_ERRORS):
                await conn.smtp("QUIT")
        finally:
            await conn.close()

    async def transaction(self, conn: _Connection, index: int) -> bool:
        rcpt = self.rcpts[index % len(self.rcpts)]
        if await conn.smtp(f"MAIL FROM:<{self.sender}>") != 250:
            return False
        if await conn.smtp(f"RCPT TO:<{rcpt}>") not in (250, 251):
            return False
        if await conn.smtp("DATA") != 354:
            return False
        message = make_message(index, self.sender, rcpt, self.size)
        if self.transform is not None:
            message = self.transform(message)
        conn.writer.write(message + b".\r\n")
        return await conn.smtp_reply() == 250


async def smtp_send_async(
    host: str,
    port: int,
    rcpts: Sequence[str],
    n_messages: int,
    concurrency: int = 10,
    size: int = 2048,
    timeout: float = 120.0,
    sender: str = "loadgen@sender.test",
    transform: Callable[[bytes], bytes] | None = None,
) -> SendResult:
    """Send `n_messages` over `concurrency` persistent connections (round-robin)."""
    jobs = iter(range(n_messages))
    start = time.monotonic()
    workers = [
        _SmtpWorker(host, port, rcpts, sender, size, jobs, start + timeout, transform)
        for _ in range(min(concurrency, n_messages))
    ]
    await asyncio.gather(*(worker.run() for worker in workers))
    return SendResult(sum(worker.sent for worker in workers), time.monotonic() - start)


def smtp_send(
    host: str,
    port: int,
    rcpts: Sequence[str],
    n_messages: int,
    concurrency: int = 10,
    size: int = 2048,
    timeout: float = 120.0,
    sender: str = "loadgen@sender.test",
    transform: Callable[[bytes], bytes] | None = None,
) -> SendResult:
    """Blocking `smtp_send_async`: (messages accepted with 250, elapsed seconds)."""
    sending = smtp_send_async(host, port, rcpts, n_messages, concurrency, size, timeout, sender,
                              transform)
    return asyncio.run(sending)


@dataclass
class _Pop3Totals:
    messages: int = 0
    octets: int = 0

    async def mailbox(
        self, host: str, port: int, user: str, password: str, deadline: float
    ) -> None:
        conn = await _Connection.open(host, port, deadline)
        try:
            await conn.pop3()
            await conn.pop3(f"USER {user}")
            await conn.pop3(f"PASS {password}")
            await conn.pop3("LIST")
            listing = (await conn.pop3_multiline()).splitlines()[:-1]
            for number in [line.split()[0].decode() for line in listing]:
                await conn.pop3(f"RETR {number}")
                body = await conn.pop3_multiline()  # not inside `+=`: totals are shared
                self.octets += len(body) - 3
                self.messages += 1
            await conn.pop3("QUIT")
        finally:
            await conn.close()

    async def worker(
        self, host: str, port: int, accounts: Iterator[tuple[str, str]], deadline: float
    ) -> None:
        for user, password in accounts:
            with contextlib.suppress(*SESSION_ERRORS):
                await self.mailbox(host, port, user, password, deadline)
            if time.monotonic() >= deadline:
                return


async def pop3_download_async(
    host: str,
    port: int,
    users_passwords: Sequence[tuple[str, str]],
    concurrency: int = 10,
    timeout: float = 120.0,
) -> DownloadResult:
    """Each mailbox once, `concurrency` at a time: LIST, RETR all, QUIT (no DELE)."""
    totals = _Pop3Totals()
    accounts = iter(users_passwords)
    start = time.monotonic()
    workers = min(concurrency, len(users_passwords))
    await asyncio.gather(
        *(totals.worker(host, port, accounts, start + timeout) for _ in range(workers))
    )
    return DownloadResult(totals.messages, totals.octets, time.monotonic() - start)


def pop3_download(
    host: str,
    port: int,
    users_passwords: Sequence[tuple[str, str]],
    concurrency: int = 10,
    timeout: float = 120.0,
) -> DownloadResult:
    """Blocking `pop3_download_async`: (messages, octets, elapsed seconds)."""
    downloading = pop3_download_async(host, port, users_passwords, concurrency, timeout)
    return asyncio.run(downloading)
