"""The PROXY protocol (v1 and v2) on every mail listener: believed from TRUSTED_PROXIES only."""

from __future__ import annotations

import base64
import ipaddress
import logging
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from mailcore import listeners, servers
from mailcore.pop3 import replies as pop3_replies
from mailcore.proxy import BadHeader, TrustedProxies, crc32c, parse_v1, parse_v2
from tests.conftest import PASSWORD, require_program
from tests.mailboxes import inbox, raw_of
from tests.servers import RawClient, ServerThread, client_tls_context, free_port, listens
from tests.waiting import wait_until

ALICE = "alice@example.test"
CLIENT = "203.0.113.7"  # TEST-NET-3: a client far away, behind the proxy
CLIENT6 = "2001:db8::7"
BODY = (b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\n"
        b"Hello\r\n")
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


# Headers, built from the specification ------------------------------------------------------

def v1(source: str = CLIENT, port: int = 40123, destination: str | None = None) -> bytes:
    """Return a v1 line (section 2.1) for a TCP connection from source."""
    ip = ipaddress.ip_address(source)
    family = "TCP4" if ip.version == 4 else "TCP6"
    destination = destination or ("127.0.0.1" if ip.version == 4 else "::1")
    return f"PROXY {family} {source} {destination} {port} 25\r\n".encode()


def v2(source: str = CLIENT, port: int = 40123, *, local: bool = False,
       tlvs: bytes = b"") -> bytes:
    """Return a v2 header (section 2.2) for a TCP connection from source."""
    ip = ipaddress.ip_address(source)
    destination = ipaddress.ip_address("127.0.0.1" if ip.version == 4 else "::1")
    family = 0x11 if ip.version == 4 else 0x21  # INET or INET6, STREAM
    block = ip.packed + destination.packed + struct.pack("!HH", port, 25) + tlvs
    command = 0x20 if local else 0x21
    return SIGNATURE + bytes([command, family]) + struct.pack("!H", len(block)) + block


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


HEADERS = {"v1": v1, "v2": v2}


# Servers and clients ------------------------------------------------------------------------

@pytest.fixture
def behind_proxy(settings, transactional_db):
    """mailcore behind a load balancer on 127.0.0.1 (the only peer the tests have)."""
    settings.TRUSTED_PROXIES = ["192.0.2.0/24", "127.0.0.1"]
    thread = ServerThread().start()
    yield thread
    thread.stop()


@pytest.fixture
def proxy_elsewhere(settings, transactional_db):
    """mailcore trusting a proxy that is not us: our headers must count for nothing."""
    settings.TRUSTED_PROXIES = ["192.0.2.1"]
    thread = ServerThread().start()
    yield thread
    thread.stop()


@pytest.fixture
def clients():
    opened: list[RawClient] = []

    def through_proxy(server: ServerThread, name: str, header: bytes,
                      tls: bool = False) -> RawClient:
        """Connect as the proxy does: the header in plaintext, then (perhaps) TLS."""
        client = RawClient(server.port(name))
        opened.append(client)
        client.send(header)
        if tls:
            client.starttls()
        return client

    yield through_proxy
    for client in opened:
        client.close()


@pytest.fixture
def session_log(caplog):
    caplog.set_level(logging.INFO, logger="mailcore")
    return caplog


def logged(caplog, text: str) -> bool:
    """Return whether the server logged a line containing text (it logs from a thread)."""
    return wait_until(lambda: any(text in record.getMessage() for record in caplog.records),
                      f"a log line with {text!r}", 5)


def plain(user: str = ALICE, password: str = PASSWORD) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def smtp_send(client: RawClient, rcpt: str = ALICE, mail_from: str = "sender@remote.test",
              login: bool = False) -> None:
    assert client.smtp_reply().startswith("220 ")
    client.transact("EHLO client.test", "250 ", smtp=True)
    if login:
        client.transact(f"AUTH PLAIN {plain()}", "235 2.7.0", smtp=True)
    assert client.send_mail(BODY, mail_from, (rcpt,)).startswith("250 ")


def received_line(mailbox) -> bytes:
    raw = raw_of(inbox(mailbox)[0])
    return next(line for line in raw.split(b"\r\n") if line.startswith(b"Received: from"))


# SMTP -------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", HEADERS)
def test_smtp_takes_the_client_address_from_a_trusted_proxys_header(
        behind_proxy, clients, alice, version, session_log):
    client = clients(behind_proxy, "smtp", HEADERS[version]())
    smtp_send(client)
    assert received_line(alice) == f"Received: from client.test ([{CLIENT}])".encode()
    assert logged(session_log, f"peer={CLIENT} connect proxy=127.0.0.1")


def test_submission_after_starttls_records_the_proxied_client(behind_proxy, clients, alice,
                                                             bob):
    client = clients(behind_proxy, "submission", v2())
    assert client.smtp_reply().startswith("220 ")
    client.transact("EHLO client.test", "250 ", smtp=True)
    client.transact("STARTTLS", "220 2.0.0", smtp=True)
    client.starttls()
    client.transact("EHLO client.test", "250 ", smtp=True)
    client.transact(f"AUTH PLAIN {plain()}", "235 2.7.0", smtp=True)
    assert client.send_mail(BODY, ALICE, ("bob@example.test",)).startswith("250 ")
    assert received_line(bob).startswith(f"Received: from client.test ([{CLIENT}])".encode())


def test_submission_behind_a_loopback_proxy_refuses_plaintext_auth_to_a_remote_client(
        behind_proxy, clients, alice, settings):
    settings.PLAINTEXT_AUTH = "loopback"
    client = clients(behind_proxy, "submission", v1())
    assert client.smtp_reply().startswith("220 ")
    client.transact("EHLO client.test", "250 ", smtp=True)
    client.transact(f"AUTH PLAIN {plain()}", "538 5.7.11", smtp=True)
    proxied_loopback = clients(behind_proxy, "submission", v1("127.0.0.2"))
    assert proxied_loopback.smtp_reply().startswith("220 ")
    proxied_loopback.transact("EHLO client.test", "250 ", smtp=True)
    proxied_loopback.transact(f"AUTH PLAIN {plain()}", "235 2.7.0", smtp=True)


@pytest.mark.parametrize("version", HEADERS)
def test_implicit_tls_submission_reads_the_header_before_the_handshake(
        behind_proxy, clients, alice, bob, version):
    client = clients(behind_proxy, "submissions", HEADERS[version](CLIENT6), tls=True)
    smtp_send(client, rcpt="bob@example.test", mail_from=ALICE, login=True)
    assert received_line(bob).startswith(f"Received: from client.test ([{CLIENT6}])".encode())


def test_smtp_does_not_honour_a_header_from_an_untrusted_peer(proxy_elsewhere, clients,
                                                              alice):
    client = clients(proxy_elsewhere, "smtp", v1())
    assert client.smtp_reply().startswith("220 ")
    assert client.smtp_reply().startswith("500 ")  # just an unknown command
    client.transact("EHLO client.test", "250 ", smtp=True)
    assert client.send_mail(BODY, "sender@remote.test", (ALICE,)).startswith("250 ")
    assert received_line(alice) == b"Received: from client.test ([127.0.0.1])"


def test_a_health_check_keeps_the_proxys_own_address(behind_proxy, clients, alice):
    client = clients(behind_proxy, "smtp", v2(local=True))
    smtp_send(client)
    assert received_line(alice) == b"Received: from client.test ([127.0.0.1])"


def test_proxy_unknown_keeps_the_proxys_own_address(behind_proxy, clients, alice):
    client = clients(behind_proxy, "smtp", b"PROXY UNKNOWN\r\n")
    smtp_send(client)
    assert received_line(alice) == b"Received: from client.test ([127.0.0.1])"


# POP3 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", HEADERS)
def test_pop3_behind_a_loopback_proxy_refuses_plaintext_to_a_remote_client(
        behind_proxy, clients, alice, settings, version, session_log):
    settings.PLAINTEXT_AUTH = "loopback"
    client = clients(behind_proxy, "pop3", HEADERS[version]())
    assert client.line().startswith("+OK ")
    assert logged(session_log, "pop3 session=")
    assert logged(session_log, f"peer={CLIENT} connect proxy=127.0.0.1")
    client.transact(f"USER {ALICE}", pop3_replies.PLAINTEXT_DISALLOWED)


def test_pop3_from_a_proxied_loopback_client_allows_plaintext(behind_proxy, clients, alice,
                                                              settings):
    settings.PLAINTEXT_AUTH = "loopback"
    client = clients(behind_proxy, "pop3", v1("127.0.0.2"))
    assert client.line().startswith("+OK ")
    client.transact(f"USER {ALICE}", "+OK")
    client.transact(f"PASS {PASSWORD}", "+OK Logged in")


def test_pop3s_reads_the_header_then_starts_tls(behind_proxy, clients, alice, session_log):
    client = clients(behind_proxy, "pop3s", v2(CLIENT6), tls=True)
    assert client.line().startswith("+OK ")
    client.transact(f"USER {ALICE}", "+OK")
    client.transact(f"PASS {PASSWORD}", "+OK Logged in")
    assert logged(session_log, "pop3s session=")
    assert logged(session_log, f"peer={CLIENT6} connect proxy=127.0.0.1")


def test_pop3_does_not_honour_a_header_from_an_untrusted_peer(proxy_elsewhere, clients,
                                                              alice, settings, session_log):
    settings.PLAINTEXT_AUTH = "loopback"
    client = clients(proxy_elsewhere, "pop3", v1())
    assert client.line().startswith("+OK ")
    assert client.line().startswith("-ERR ")
    # Still the loopback peer it is: plaintext is allowed, which a remote client would not be.
    client.transact(f"USER {ALICE}", "+OK")
    client.transact(f"PASS {PASSWORD}", "+OK Logged in")
    assert not any(CLIENT in record.getMessage() for record in session_log.records)


def test_pop3_behind_a_proxy_still_refuses_commands_pipelined_after_stls(
        behind_proxy, clients, alice):
    client = clients(behind_proxy, "pop3", v1() + b"STLS\r\nCAPA\r\n")
    assert client.line().startswith("+OK ")
    assert client.line().startswith("-ERR ")
    assert client.closed()


# IMAP -------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", HEADERS)
def test_imap_behind_a_loopback_proxy_refuses_plaintext_to_a_remote_client(
        behind_proxy, clients, alice, settings, version, session_log):
    settings.PLAINTEXT_AUTH = "loopback"
    client = clients(behind_proxy, "imap", HEADERS[version]())
    greeting = client.line()
    assert greeting.startswith("* OK ") and "LOGINDISABLED" in greeting
    assert client.transact(f'a LOGIN {ALICE} "{PASSWORD}"', "a NO [PRIVACYREQUIRED]")
    assert logged(session_log, f"peer={CLIENT} connect proxy=127.0.0.1")


@pytest.mark.parametrize("version", HEADERS)
def test_imaps_reads_the_header_then_starts_tls(behind_proxy, clients, alice, version,
                                               session_log):
    client = clients(behind_proxy, "imaps", HEADERS[version](CLIENT6), tls=True)
    assert client.line().startswith("* OK ")
    client.transact(f'a LOGIN {ALICE} "{PASSWORD}"', "a OK ")
    assert logged(session_log, f"peer={CLIENT6} connect proxy=127.0.0.1")


def test_imap_does_not_honour_a_header_from_an_untrusted_peer(proxy_elsewhere, clients,
                                                              alice, settings):
    settings.PLAINTEXT_AUTH = "loopback"
    client = clients(proxy_elsewhere, "imap", v1())
    greeting = client.line()
    assert "LOGINDISABLED" not in greeting
    assert client.line().startswith("PROXY BAD ")
    client.transact(f'a LOGIN {ALICE} "{PASSWORD}"', "a OK ")


def test_an_untrusted_header_on_an_implicit_tls_port_is_a_failed_handshake(
        proxy_elsewhere, clients, alice, session_log):
    client = clients(proxy_elsewhere, "imaps", v2())
    assert client.closed()
    assert logged(session_log, "imaps peer=127.0.0.1 tls handshake failed")


def test_implicit_tls_from_a_direct_client_still_works(proxy_elsewhere, alice):
    client = RawClient(proxy_elsewhere.port("imaps"), tls=True)
    try:
        assert client.line().startswith("* OK ")
        client.transact(f'a LOGIN {ALICE} "{PASSWORD}"', "a OK ")
    finally:
        client.close()


def test_the_tls_hello_may_arrive_in_the_same_packet_as_the_header(behind_proxy, alice):
    # Not a byte after the header may be read with it, or the handshake breaks.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_tls_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", behind_proxy.port("imaps")), 10) as sock:
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        sock.sendall(v2() + outgoing.read())
        greeting = b""
        handshaken = False
        while b"\n" not in greeting:
            try:
                if not handshaken:
                    tls.do_handshake()
                    handshaken = True
                greeting += tls.read(4096)
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                chunk = sock.recv(65536)
                assert chunk, "closed during the handshake"
                incoming.write(chunk)
    assert greeting.startswith(b"* OK ")


# Hostile or broken headers from a trusted peer -----------------------------------------------

BROKEN = {
    "no header at all": b"EHLO client.test\r\n",
    "v1 without addresses": b"PROXY TCP4\r\n",
    "v1 of the wrong family": b"PROXY TCP6 203.0.113.7 127.0.0.1 40123 25\r\n",
    "v1 port out of range": b"PROXY TCP4 203.0.113.7 127.0.0.1 65536 25\r\n",
    "v1 without CRLF, too long": b"PROXY TCP4 " + b"1" * 200,
    "v1 with a bare LF": b"PROXY TCP4 203.0.113.7 127.0.0.1 40123 25\n",
    "v1 with NUL bytes": b"PROXY TCP4 \x00\x00\x00\x00 127.0.0.1 1 2\r\n",
    "v2 of version 3": SIGNATURE + b"\x31\x11\x00\x0c" + b"\x00" * 12,
    "v2 unknown command": SIGNATURE + b"\x2f\x11\x00\x0c" + b"\x00" * 12,
    "v2 too long": SIGNATURE + b"\x21\x11\xff\xff" + b"\x00" * 100,
    "v2 address block too short": SIGNATURE + b"\x21\x21\x00\x0c" + b"\x00" * 12,
    "v2 datagram": SIGNATURE + b"\x21\x12\x00\x0c" + b"\x00" * 12,
    "v2 truncated TLV": v2(tlvs=b"\x04\x00\x10abc"),
}


@pytest.mark.parametrize("listener", ["smtp", "submissions", "pop3", "imaps"])
@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_header_from_a_trusted_peer_closes_only_that_connection(
        behind_proxy, clients, alice, listener, case, session_log):
    client = clients(behind_proxy, listener, BROKEN[case])
    assert client.closed()
    assert client.buffer == b""  # not even a greeting
    assert logged(session_log, "proxy header refused")
    # The listener goes on serving the next connection.
    client = clients(behind_proxy, listener, v1(), tls=listener in ("submissions", "imaps"))
    assert client.line()[:3] in ("220", "+OK", "* O")


@pytest.mark.parametrize("listener", ["smtp", "pop3s"])
def test_a_trusted_peer_hanging_up_mid_header_is_no_internal_error(
        behind_proxy, clients, listener, session_log):
    client = clients(behind_proxy, listener, v2()[:20])
    client.sock.shutdown(socket.SHUT_WR)
    assert client.closed()
    assert logged(session_log, f"{listener} peer=127.0.0.1 closed before the proxy header")


def test_a_trusted_peer_that_sends_no_header_is_closed(behind_proxy, clients, monkeypatch,
                                                      session_log):
    monkeypatch.setattr(listeners, "PROXY_HEADER_TIMEOUT", 0.2)
    client = clients(behind_proxy, "imap", b"")
    assert client.closed()
    assert logged(session_log, "imap peer=127.0.0.1 proxy header timed out")


def test_a_header_may_arrive_in_pieces_and_with_the_first_command(behind_proxy, clients,
                                                                 alice):
    header = v1()
    client = clients(behind_proxy, "pop3", header[:7])
    time.sleep(0.05)  # let the server read the first piece on its own
    client.send(header[7:30])
    time.sleep(0.05)
    client.send(header[30:] + b"CAPA\r\n")
    assert client.line().startswith("+OK ")
    assert client.line().startswith("+OK ")  # CAPA's
    assert "USER" not in client.multiline()  # a remote client, on plaintext


# The parser ---------------------------------------------------------------------------------

def test_v1_parses_ipv4_and_ipv6():
    assert parse_v1(v1()).source == (CLIENT, 40123)
    header = parse_v1(v1(CLIENT6, 65535))
    assert header.source == (CLIENT6, 65535) and header.destination == ("::1", 25)


def test_v1_unknown_ignores_the_rest_of_the_line():
    assert parse_v1(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").source is None


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 203.0.113.7 127.0.0.1 040123 25\r\n",  # leading zero
    b"PROXY TCP4 203.0.113.7 127.0.0.1 -1 25\r\n",
    b"PROXY TCP4 203.0.113.7  127.0.0.1 1 25\r\n",  # two spaces
    b"PROXY TCP4 203.0.113.007 127.0.0.1 1 25\r\n",
    b"PROXY TCP4 2001:db8::7 ::1 1 25\r\n",
    b"PROXY UDP4 203.0.113.7 127.0.0.1 1 25\r\n",
    b"PROXY TCP6 " + b"f" * 100 + b" ::1 1 2\r\n",  # over 107 bytes
])
def test_v1_refuses_malformed_lines(line):
    with pytest.raises(BadHeader):
        parse_v1(line)


def test_v2_parses_ipv6_and_its_tlvs_in_order():
    tlvs = tlv(0x01, b"imap") + tlv(0x05, b"\x00" * 8) + tlv(0x04, b"")
    header = parse_v2(v2(CLIENT6, 993, tlvs=tlvs))
    assert header.source == (CLIENT6, 993)
    assert header.tlvs == ((0x01, b"imap"), (0x05, b"\x00" * 8), (0x04, b""))


def test_v2_turns_an_ipv4_mapped_client_into_ipv4():
    assert parse_v2(v2("::ffff:203.0.113.7")).source == (CLIENT, 40123)


def test_v2_local_and_unspecified_keep_the_connections_address():
    assert parse_v2(v2(local=True)).source is None
    assert parse_v2(SIGNATURE + b"\x21\x00\x00\x00").source is None


def test_v2_from_a_unix_socket_keeps_the_connections_address():
    block = b"/run/haproxy.sock".ljust(108, b"\0") + b"\0" * 108
    header = parse_v2(SIGNATURE + b"\x21\x31" + struct.pack("!H", 216) + block)
    assert header.source is None


@pytest.mark.parametrize("case", [c for c in BROKEN if c.startswith("v2")])
def test_v2_refuses_malformed_headers(case):
    with pytest.raises(BadHeader):
        parse_v2(BROKEN[case])


# TRUSTED_PROXIES --------------------------------------------------------------------------

def test_trusted_proxies_match_addresses_and_networks():
    trusted = TrustedProxies(["10.0.0.0/8", "192.0.2.1", "2001:db8:1::/48"])
    assert "10.1.2.3" in trusted and "192.0.2.1" in trusted and "2001:db8:1::5" in trusted
    assert "192.0.2.2" not in trusted and "2001:db8:2::5" not in trusted
    assert "::ffff:10.1.2.3" in trusted  # a dual-stack socket's view of an IPv4 proxy
    assert "/run/mailcore.sock" not in trusted and "" not in trusted


def test_no_trusted_proxies_trusts_nobody():
    trusted = TrustedProxies([])
    assert not trusted and "127.0.0.1" not in trusted


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "proxy.example", "10.0.0.0/33"])
def test_a_bad_trusted_proxies_entry_stops_mailcore_before_it_listens(settings, entry):
    settings.TRUSTED_PROXIES = [entry]
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        servers.configured_specs(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))


# HAProxy ----------------------------------------------------------------------------------

def _start_haproxy(config: Path, ports: list[int]) -> subprocess.Popen:
    proc = subprocess.Popen([require_program("haproxy"), "-db", "-f", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited: {proc.stdout.read().decode()}")
        return all(listens(port) for port in ports)

    wait_until(up, "haproxy to listen", 10)
    return proc


def _from_127_0_0_2(port: int, tls: bool = False) -> RawClient:
    """Connect from another loopback address, so that the client is not the proxy."""
    sock = socket.create_connection(("127.0.0.1", port), 10, source_address=("127.0.0.2", 0))
    client = RawClient.__new__(RawClient)  # RawClient always connects from 127.0.0.1
    client.sock, client.buffer = sock, b""
    if tls:
        client.starttls()
    return client


def test_haproxy_send_proxy_v2_passes_the_real_client_address(behind_proxy, alice, tmp_path,
                                                             session_log):
    require_program("haproxy")
    smtp_front, imaps_front = free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"""
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

listen smtp
    bind 127.0.0.1:{smtp_front}
    server mailcore 127.0.0.1:{behind_proxy.port("smtp")} send-proxy-v2 proxy-v2-options crc32c

listen imaps
    bind 127.0.0.1:{imaps_front}
    server mailcore 127.0.0.1:{behind_proxy.port("imaps")} send-proxy-v2
""")
    haproxy = _start_haproxy(config, [smtp_front, imaps_front])
    try:
        smtp = _from_127_0_0_2(smtp_front)
        smtp_send(smtp)
        smtp.close()
        assert received_line(alice) == b"Received: from client.test ([127.0.0.2])"

        imaps = _from_127_0_0_2(imaps_front, tls=True)
        assert imaps.line().startswith("* OK ")
        imaps.transact(f'a LOGIN {ALICE} "{PASSWORD}"', "a OK ")
        imaps.close()
        assert logged(session_log, "peer=127.0.0.2 connect proxy=127.0.0.1")
    finally:
        haproxy.terminate()
        haproxy.wait(10)



def test_crc32c_is_castagnolis():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value


def _with_crc32c(header: bytes) -> bytes:
    """Return header with a CRC32C TLV appended and its checksum filled in (section 2.2.5)."""
    header = header[:14] + struct.pack("!H", len(header) - 16 + 7) + header[16:] + \
        tlv(0x03, b"\x00" * 4)
    return header[:-4] + struct.pack("!I", crc32c(header))


def test_v2_accepts_a_header_whose_crc32c_matches():
    header = parse_v2(_with_crc32c(v2(CLIENT, 40123)))
    assert header.source == (CLIENT, 40123)


def test_v2_refuses_a_header_whose_crc32c_does_not_match():
    good = _with_crc32c(v2(CLIENT, 40123))
    damaged = good[:16] + bytes([good[16] ^ 1]) + good[17:]  # one bit of the address
    with pytest.raises(BadHeader, match="CRC32C"):
        parse_v2(damaged)
