"""IMAP greeting, capabilities, STARTTLS, implicit TLS, LOGIN and AUTHENTICATE PLAIN."""

from __future__ import annotations

import imaplib
import ssl
import time

import imapclient
import pytest

from tests.conftest import PASSWORD
from tests.imap_client import ALICE, connect, plain
from tests.servers import client_tls_context


def caps(line: str) -> set[str]:
    start = line.index("[CAPABILITY ") + len("[CAPABILITY ")
    return set(line[start:line.index("]", start)].split())


def test_the_greeting_lists_capabilities_for_the_not_authenticated_state(server):
    client = connect(server)
    offered = caps(client.greeting)
    assert {"IMAP4rev1", "IMAP4rev2", "STARTTLS", "AUTH=PLAIN", "SASL-IR", "LITERAL+",
            "ENABLE", "ID", "IDLE"} <= offered
    assert "LOGINDISABLED" not in offered  # plaintext is allowed from loopback by default
    assert "QRESYNC" not in offered  # only once logged in


def test_login_answers_with_the_full_capability_list(server, alice):
    client = connect(server)
    untagged, done = client.run(f'LOGIN {ALICE} "{PASSWORD}"')
    assert untagged == []
    assert done.startswith("OK [CAPABILITY ")
    offered = caps(done)
    assert {"UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "ESEARCH", "SPECIAL-USE",
            "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "QUOTA", "NAMESPACE",
            "UNSELECT", "CHILDREN", "SEARCHRES", "MULTIAPPEND", "BINARY",
            "APPENDLIMIT=52428800", "QUOTA=RES-STORAGE"} <= offered
    assert "STARTTLS" not in offered and "AUTH=PLAIN" not in offered
    untagged, done = client.run("CAPABILITY")
    assert set(untagged[0].split()[2:]) == offered and done == "OK CAPABILITY completed"


def test_without_tls_from_afar_login_is_disabled(server, alice, settings):
    settings.PLAINTEXT_AUTH = "never"
    client = connect(server)
    offered = caps(client.greeting)
    assert "LOGINDISABLED" in offered and "AUTH=PLAIN" not in offered
    assert client.run(f'LOGIN {ALICE} "{PASSWORD}"')[1] == (
        "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure "
        "connections; use STARTTLS")
    assert client.run(f"AUTHENTICATE PLAIN {plain('', ALICE, PASSWORD)}")[1].startswith(
        "NO [PRIVACYREQUIRED]")


def test_starttls_then_login(server, alice, settings):
    settings.PLAINTEXT_AUTH = "never"
    client = connect(server)
    assert client.run("STARTTLS") == ([], "OK Begin TLS negotiation now")
    client.starttls()
    untagged, done = client.run("CAPABILITY")
    offered = set(untagged[0].split()[2:])
    assert "STARTTLS" not in offered and "AUTH=PLAIN" in offered
    assert "LOGINDISABLED" not in offered
    client.login()
    assert client.run("STARTTLS")[1] == "BAD STARTTLS not valid in this state"


def test_starttls_twice_is_refused(server):
    client = connect(server)
    client.run("STARTTLS")
    client.starttls()
    assert client.run("STARTTLS")[1] == "BAD TLS is already active"


def test_commands_pipelined_after_starttls_are_refused(server):
    client = connect(server)
    client.send(b"a STARTTLS\r\nb LOGIN alice@example.test x\r\n")
    assert client.response() == "* BYE Data after STARTTLS; closing connection"
    assert client.closed()


def test_implicit_tls_on_the_imaps_port(server, alice):
    client = connect(server, "imaps")
    assert "STARTTLS" not in caps(client.greeting)
    client.login()
    client.ok("SELECT INBOX")


def test_imaplib_over_imaps(server, alice):
    with imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"),
                           ssl_context=_localhost_context()) as client:
        assert client.login(ALICE, PASSWORD)[0] == "OK"
        assert client.select("INBOX") == ("OK", [b"0"])


def _localhost_context() -> ssl.SSLContext:
    context = client_tls_context()
    context.check_hostname = False  # imaplib connects to 127.0.0.1, not "localhost"
    return context


def test_authenticate_plain_with_an_initial_response(server, alice):
    client = connect(server)
    _, done = client.run(f"AUTHENTICATE PLAIN {plain('', ALICE, PASSWORD)}")
    assert done.startswith("OK [CAPABILITY ") and done.endswith("Logged in")


def test_authenticate_plain_with_a_continuation(server, alice):
    client = connect(server)
    client.send("a1 AUTHENTICATE PLAIN")
    assert client.raw_line() == b"+ \r\n"
    client.send(plain(ALICE, ALICE, PASSWORD))
    assert client.response().startswith("a1 OK [CAPABILITY ")


def test_authenticate_can_be_cancelled(server, alice):
    client = connect(server)
    client.send("a1 AUTHENTICATE PLAIN")
    client.raw_line()
    client.send("*")
    assert client.response() == "a1 BAD Authentication cancelled"


def test_authenticate_refuses_other_mechanisms_and_bad_base64(server, alice):
    client = connect(server)
    assert client.run("AUTHENTICATE CRAM-MD5")[1] == "NO Unsupported authentication mechanism"
    client.send("a1 AUTHENTICATE PLAIN")
    client.raw_line()
    client.send("!!!notbase64")
    assert client.response() == "a1 BAD Invalid SASL response"


def test_acting_as_another_user_is_refused(server, alice, bob):
    client = connect(server)
    done = client.run(f"AUTHENTICATE PLAIN {plain('bob@example.test', ALICE, PASSWORD)}")[1]
    assert done == "NO [AUTHENTICATIONFAILED] Authentication failed"


def test_a_failed_login_is_delayed_and_refused(server, alice, settings):
    settings.AUTH_FAILURE_DELAY = 0.3
    client = connect(server)
    started = time.monotonic()
    assert client.run(f'LOGIN {ALICE} "wrong"')[1] == (
        "NO [AUTHENTICATIONFAILED] Authentication failed")
    assert time.monotonic() - started >= 0.3
    client.login()


def test_three_failures_close_the_connection(server, alice):
    client = connect(server)
    client.run(f'LOGIN {ALICE} "wrong"')
    client.run(f'LOGIN {ALICE} "wrong"')
    client.send(f'a3 LOGIN {ALICE} "wrong"')
    assert client.response() == (
        "* BYE [AUTHENTICATIONFAILED] Too many failed logins; closing connection")
    assert client.closed()


def test_failures_from_one_address_refuse_only_that_address(server, alice, bob, settings):
    # The decoy scenario: guesses for alice and for names that do not exist, from
    # one address (127.0.0.2), refuse that address, not alice from anywhere else.
    settings.AUTH_MAX_FAILURES = 3
    for user in (ALICE, ALICE, ALICE, "decoy1@example.test", "decoy2@example.test"):
        connect(server, source="127.0.0.2").run(f'LOGIN {user} "wrong"')
    client = connect(server, source="127.0.0.2")
    assert client.run(f'LOGIN bob@example.test "{PASSWORD}"')[1] == (
        "NO [UNAVAILABLE] Too many failed logins; try again later")
    client = connect(server, source="127.0.0.3")
    assert client.run(f'LOGIN {ALICE} "{PASSWORD}"')[1].startswith("OK [CAPABILITY ")


def test_logins_are_rate_limited_across_connections(server, alice, settings):
    settings.AUTH_MAX_FAILURES = 2
    for _ in range(2):
        connect(server).run(f'LOGIN {ALICE} "wrong"')
    client = connect(server)
    assert client.run(f'LOGIN {ALICE} "{PASSWORD}"')[1] == (
        "NO [UNAVAILABLE] Too many failed logins; try again later")


def test_a_literal_password_with_spaces_and_quotes(server, alice):
    from mailcore import directory

    directory.set_password(alice, 'pa ss"wörd')
    client = connect(server)
    secret = 'pa ss"wörd'.encode()
    client.send(f"a1 LOGIN {ALICE} {{{len(secret)}}}".encode() + b"\r\n")
    assert client.raw_line() == b"+ Ready for literal data\r\n"
    client.send(secret + b"\r\n")
    assert client.response().startswith("a1 OK [CAPABILITY ")


def test_logout_says_bye_then_ok(server):
    client = connect(server)
    assert client.run("LOGOUT") == (["* BYE Logging out"], "OK LOGOUT completed")
    assert client.closed()


def test_imapclient_logs_in_and_reads_capabilities(server, alice):
    client = imapclient.IMAPClient("127.0.0.1", port=server.port("imap"), ssl=False,
                                   timeout=10)
    client.login(ALICE, PASSWORD)
    assert client.has_capability("IDLE") and client.has_capability("MOVE")
    assert b"mailcore" in client.id_({"name": "pytest"})[0]
    client.logout()


@pytest.mark.parametrize("port", ["imap", "imaps"])
def test_a_session_is_logged_as_one_line_per_event(server, alice, caplog, port):
    caplog.set_level("INFO", logger="mailcore.session")
    client = connect(server, port, login=True)
    client.run("LOGOUT")
    client.closed()
    time.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(port + " ")]
    assert [line.split(" ", 3)[3] for line in lines] == [
        "connect", f"login user={ALICE}", "logout", "disconnect"]


def test_imaplib_starttls_then_login(server, alice):
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
    client.starttls(ssl_context=_localhost_context())
    assert client.login(ALICE, PASSWORD)[0] == "OK"
    client.logout()

