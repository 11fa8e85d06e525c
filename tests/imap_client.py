"""A scripted IMAP client for tests: exact responses, literals read whole, tags numbered."""

from __future__ import annotations

import base64
import imaplib
import re
from datetime import UTC, datetime, timedelta

from mailcore.models import Blob, Folder, Message
from mailcore.store.blobs import blob_store
from tests.conftest import PASSWORD
from tests.servers import RawClient, client_tls_context

ALICE = "alice@example.test"
OPEN: list[IMAPClient] = []
_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n$")


class IMAPClient(RawClient):
    """RawClient speaking IMAP: run(command) returns (untagged responses, tagged line)."""

    def __init__(self, port: int, tls: bool = False, timeout: float = 10,
                 source: str = "", host: str = "127.0.0.1") -> None:
        super().__init__(port, tls=tls, timeout=timeout, source=source, host=host)
        OPEN.append(self)
        self.counter = 0
        self.greeting = self.response()

    def raw_line(self) -> bytes:
        """Return one line as bytes, with its CRLF."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def read_bytes(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buffer!r}")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def response(self) -> str:
        """Return one response, literals included inline, without the final CRLF."""
        out = b""
        while True:
            line = self.raw_line()
            match = _LITERAL.search(line)
            if match is None:
                out += line
                return out.rstrip(b"\r\n").decode("utf-8", "replace")
            out += line + self.read_bytes(int(match.group(1)))

    def next_tag(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def run(self, command: str | bytes, tag: str | None = None) -> tuple[list[str], str]:
        """Send a tagged command; return its untagged responses and its tagged line."""
        tag = tag or self.next_tag()
        if isinstance(command, str):
            command = command.encode()
        self.send(tag.encode() + b" " + command + b"\r\n")
        return self.collect(tag)

    def collect(self, tag: str) -> tuple[list[str], str]:
        untagged = []
        while True:
            response = self.response()
            if response.startswith(tag + " "):
                return untagged, response[len(tag) + 1:]
            untagged.append(response)

    def ok(self, command: str | bytes) -> list[str]:
        """Run a command that must succeed; return its untagged responses."""
        untagged, done = self.run(command)
        assert done.startswith("OK"), f"{command!r}: {done!r} after {untagged!r}"
        return untagged

    def login(self, user: str = ALICE, password: str = PASSWORD) -> None:
        self.ok(f'LOGIN "{user}" "{password}"')

    def starttls(self) -> None:
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="localhost")


def idle(client: IMAPClient) -> None:
    """Start IDLE (tag i1) and wait for the server's go-ahead."""
    client.send("i1 IDLE")
    assert client.response() == "+ idling"


def done(client: IMAPClient) -> tuple[list[str], str]:
    """End IDLE; return what came before the tagged answer, and the answer."""
    client.send("DONE")
    return client.collect("i1")


def close_all() -> None:
    """Close every client a test opened, so the server stops without waiting for them."""
    while OPEN:
        OPEN.pop().close()


def connect(server, port: str = "imap", login: bool = False, source: str = "") -> IMAPClient:
    client = IMAPClient(server.port(port), tls=port == "imaps", source=source)
    assert client.greeting.startswith("* OK ")
    if login:
        client.login()
    return client


def selected(server, folder: str = "INBOX", enable: str = "") -> IMAPClient:
    client = connect(server, login=True)
    if enable:
        client.ok(f"ENABLE {enable}")
    client.ok(f"SELECT {folder}")
    return client


def imaplib_client(server) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
    OPEN.append(client.sock)
    client.login(ALICE, PASSWORD)
    return client


def plain(authzid: str, user: str, password: str) -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def message(n: int, subject: str | None = None, body: str | None = None,
            extra: str = "") -> bytes:
    return (f"From: Sender <sender@remote.test>\r\nTo: alice@example.test\r\n"
            f"Subject: {subject or f'message {n}'}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
            f"Message-ID: <{n}@remote.test>\r\n{extra}\r\n{body or f'Body {n}'}\r\n").encode()


def bulk_fill(folder: Folder, count: int) -> None:
    """Bulk-insert count messages sharing one blob, with varied flags and headers."""
    raw = message(0)
    key = blob_store().put(raw)
    Blob.objects.get_or_create(key=key, defaults={"size": len(raw)})  # S3: put() made it
    start = datetime(2024, 1, 1, tzinfo=UTC)
    Message.objects.bulk_create([
        Message(folder=folder, uid=n, blob_id=key, size=1000 + n, modseq=n,
                internal_date=start + timedelta(hours=n), seen=n % 2 == 0,
                flagged=n % 100 == 0, subject=f"message {n}", from_addr="sender@remote.test",
                to_addrs="alice@example.test", keywords=["$Big"] if n % 1000 == 0 else [])
        for n in range(1, count + 1)
    ], batch_size=1000)
    Folder.objects.filter(pk=folder.pk).update(uidnext=count + 1, highestmodseq=count)
