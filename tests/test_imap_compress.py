"""COMPRESS=DEFLATE (RFC 4978): raw DEFLATE both ways after the OK, over plain and TLS."""

from __future__ import annotations

import base64
import os
import zlib

import pytest

from mailcore.models import Message
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver
from tests.imap_client import IMAPClient, connect, done, idle, message


class DeflateSocket:
    """A client socket speaking raw DEFLATE, flushing each send as RFC 4978 asks."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decompressor = zlib.decompressobj(-15)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(self.compressor.compress(data)
                          + self.compressor.flush(zlib.Z_SYNC_FLUSH))

    def recv(self, size: int) -> bytes:
        while True:
            raw = self.sock.recv(size)
            if not raw:
                return b""
            data = self.decompressor.decompress(raw)
            if data:
                return data

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


def compressed(server, port: str = "imap") -> IMAPClient:
    client = connect(server, port, login=True)
    assert client.run("COMPRESS DEFLATE") == ([], "OK DEFLATE active")
    assert not client.buffer  # the OK was the last thing sent uncompressed
    client.sock = DeflateSocket(client.sock)
    return client


@pytest.mark.parametrize("port", ["imap", "imaps"])
def test_a_session_goes_on_compressed(server, alice, port):
    client = compressed(server, port)
    assert "COMPRESS=DEFLATE" in client.run("CAPABILITY")[0][0].split()
    message = (b"Subject: big\r\n\r\n"
               + base64.encodebytes(os.urandom(600_000)).replace(b"\n", b"\r\n"))
    untagged, done = client.run(b"APPEND INBOX {%d+}\r\n" % len(message) + message)
    assert done.startswith("OK [APPENDUID"), done
    stored = Message.objects.get(folder__mailbox=alice, uid=1)
    assert blob_store().get(stored.blob_id) == message
    client.ok("SELECT INBOX")
    untagged, done = client.run("FETCH 1 BODY.PEEK[]")
    assert done == "OK FETCH completed"
    assert untagged[0].encode().endswith(message + b")")
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_compress_is_refused_twice_and_for_other_algorithms(server, alice):
    client = connect(server, login=True)
    assert client.run("COMPRESS LZW")[1] == "BAD Unknown compression algorithm"
    client = compressed(server)
    assert client.run("COMPRESS DEFLATE") == (
        [], "NO [COMPRESSIONACTIVE] DEFLATE active via COMPRESS")
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_compress_needs_a_login(server, alice):
    client = connect(server)
    assert client.run("COMPRESS DEFLATE") == ([], "BAD COMPRESS not valid in this state")


def test_a_line_that_inflates_too_far_is_refused_without_harm(server, alice):
    client = compressed(server)
    # 20 MB of "x" deflate to some 20 KB: read in bounded steps and dropped as too long.
    client.send(b"a NOOP " + b"x" * 20_000_000 + b"\r\n")
    assert client.response() == "* BAD [TOOBIG] Line too long"
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_garbage_instead_of_deflate_ends_the_session_quietly(server, alice):
    client = connect(server, login=True)
    client.run("COMPRESS DEFLATE")
    client.sock.sendall(b"\xff" * 64)
    data = b""
    while chunk := client.sock.recv(100):
        data += chunk
    # Closed, with the end of the server's (empty) stream, and no internal error logged.
    assert zlib.decompressobj(-15).decompress(data) == b""


def test_idle_updates_arrive_compressed_and_whole(server, alice):
    client = compressed(server)
    client.ok("SELECT INBOX")
    idle(client)
    deliver(message(1), "s@remote.test", [alice.pk])
    assert client.response() == "* 1 EXISTS"  # flushed when sent, not at the next reply
    assert done(client) == (["* 1 RECENT"], "OK IDLE completed")
