"""aiosmtpd's private hooks: only mailcore.smtp.adapter uses them, and each one is pinned.

When aiosmtpd is upgraded these tests say what changed; re-check each item of the list in
mailcore/smtp/adapter.py's docstring against the new release before changing a test.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from pathlib import Path

import aiosmtpd
import aiosmtpd.smtp
import pytest
from aiosmtpd.smtp import SMTP

import mailcore.smtp
from mailcore.listeners import Connections
from mailcore.proxy import Peer
from mailcore.smtp import adapter
from mailcore.smtp.server import InboundHandler, SMTPSession
from mailcore.smtp.submission import SubmissionHandler, SubmissionSession

SMTP_PACKAGE = Path(mailcore.smtp.__file__).parent
AIOSMTPD_SOURCE = inspect.getsource(aiosmtpd.smtp)
# The names of aiosmtpd's SMTP (and asyncio's protocol below it) our classes mean to override.
OVERRIDES = {"line_length_limit", "__init__", "connection_made", "connection_lost",
             "data_received", "push", "handle_exception", "check_auth_needed", "smtp_EHLO",
             "smtp_HELO", "smtp_STARTTLS", "smtp_MAIL", "smtp_RCPT", "smtp_VRFY", "smtp_DATA",
             "smtp_AUTH", "_getaddr"}


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _names_of_smtp(loop: asyncio.AbstractEventLoop) -> set[str]:
    """Return the names aiosmtpd's SMTP has: methods and attributes, its own and asyncio's,
    including those it sets only once connected (every self.<name> in its source)."""
    protocol = SMTP(object(), hostname="mx.test", loop=loop)
    tree = ast.parse(AIOSMTPD_SOURCE)
    set_later = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                 and isinstance(node.value, ast.Name) and node.value.id == "self"}
    return set(dir(SMTP)) | set(vars(protocol)) | set_later


def _private(names: set[str]) -> set[str]:
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _sessions(loop: asyncio.AbstractEventLoop) -> list[SMTP]:
    common = {"connections": Connections(), "peer": Peer("127.0.0.1", 1), "loop": loop,
              "hostname": "mx.test"}
    return [adapter.SMTPProtocol(InboundHandler(), hostname="mx.test", loop=loop),
            SMTPSession(InboundHandler(), **common),
            SubmissionSession(SubmissionHandler(), implicit_tls=False, **common)]


# The version the adapter was checked against ------------------------------------------------

def test_the_installed_aiosmtpd_is_the_release_the_adapter_was_checked_against():
    assert aiosmtpd.__version__ == adapter.AIOSMTPD_VERSION, (
        f"aiosmtpd is {aiosmtpd.__version__}, the adapter was checked against "
        f"{adapter.AIOSMTPD_VERSION}: re-check each hook listed in mailcore/smtp/adapter.py "
        "(and the replies below) against the new source, then update AIOSMTPD_VERSION")


# No private name outside the adapter, and no clash with aiosmtpd's names ---------------------

@pytest.mark.parametrize("module", ["server.py", "submission.py"])
def test_the_smtp_sessions_use_no_private_name_of_aiosmtpd(module, loop):
    tree = ast.parse((SMTP_PACKAGE / module).read_text())
    private = _private(_names_of_smtp(loop))
    used = sorted({node.attr for node in ast.walk(tree)
                   if isinstance(node, ast.Attribute) and node.attr in private})
    assert used == [], f"{module} reaches into aiosmtpd: move it to mailcore/smtp/adapter.py"


def test_our_session_classes_override_only_the_methods_they_mean_to(loop):
    # A name aiosmtpd adds in a new release must not silently replace, or be replaced by, ours.
    theirs = _names_of_smtp(loop)
    for cls in (adapter.SMTPProtocol, SMTPSession, SubmissionSession):
        clashes = sorted((set(vars(cls)) & theirs) - OVERRIDES - {"__doc__", "__module__"})
        assert clashes == [], f"{cls.__name__} redefines aiosmtpd's {clashes}"


def test_our_sessions_set_no_attribute_aiosmtpd_has(loop):
    theirs = _names_of_smtp(loop)
    plain = set(vars(SMTP(object(), hostname="mx.test", loop=loop)))
    for session in _sessions(loop):
        clashes = sorted((set(vars(session)) - plain) & theirs)
        assert clashes == [], f"{type(session).__name__} sets aiosmtpd's {clashes}"


def test_no_session_method_looks_like_a_command_or_an_auth_mechanism_to_aiosmtpd():
    # aiosmtpd's constructor takes every smtp_* name for a command and every auth_* name
    # (of the session or the handler) for an AUTH mechanism, so "auth_offered" once showed
    # up in EHLO as a mechanism named "offered".
    for cls in (adapter.SMTPProtocol, SMTPSession, SubmissionSession):
        assert {n for n in dir(cls) if n.startswith("auth_")} == {"auth_LOGIN", "auth_PLAIN"}
        assert ({n for n in dir(cls) if n.startswith("smtp_")}
                == {n for n in dir(SMTP) if n.startswith("smtp_")})
    assert {n for n in dir(SubmissionHandler) if n.startswith("auth_")} == {
        "auth_LOGIN", "auth_PLAIN"}


def test_the_constructor_takes_every_argument_we_pass():
    parameters = inspect.signature(SMTP.__init__).parameters
    assert {"handler", "data_size_limit", "enable_SMTPUTF8", "hostname", "ident",
            "tls_context", "timeout", "auth_require_tls", "auth_exclude_mechanism",
            "loop"} <= set(parameters)
    assert parameters["timeout"].default == 300


# The hooks the adapter relies on ------------------------------------------------------------

def test_the_reader_hook_is_where_aiosmtpd_keeps_and_reads_its_command_stream():
    connected = SMTP._cb_client_connected
    assert inspect.isfunction(connected) and not inspect.iscoroutinefunction(connected)
    assert list(inspect.signature(connected).parameters) == ["self", "reader", "writer"]
    assert "self._reader = reader" in inspect.getsource(connected)
    assert "await self._reader.readuntil()" in inspect.getsource(SMTP._handle_client)
    # Its own DATA and AUTH readers read the same stream, as ours do in its place.
    assert "self._reader.readuntil(b'\\r\\n')" in inspect.getsource(SMTP.smtp_DATA)
    assert "self._reader.readline()" in inspect.getsource(SMTP.challenge_auth)


class _Transport(asyncio.Transport):
    """A transport that records what the protocol writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def test_the_line_reader_is_the_stream_aiosmtpd_reads_commands_from(loop):
    async def converse() -> bytes:
        protocol = adapter.SMTPProtocol(InboundHandler(), hostname="mx.test", loop=loop)
        transport = _Transport()
        protocol.connection_made(transport)
        reader = protocol.line_reader()
        assert isinstance(reader, asyncio.StreamReader)
        reader.feed_data(b"NOOP\r\n")  # aiosmtpd's command loop must be the one to read it
        while b"250 OK\r\n" not in transport.written:
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        await asyncio.gather(*others, return_exceptions=True)  # the command loop, cancelled
        return bytes(transport.written)

    written = loop.run_until_complete(converse())
    assert written == b"220 mx.test Python SMTP 1.4.6\r\n250 OK\r\n"


def test_a_connection_lost_before_it_was_made_is_no_error(loop):
    # loop.start_tls (implicit TLS) reports a reset during the handshake to a protocol whose
    # connection_made never ran.
    for protocol in _sessions(loop):
        protocol.connection_lost(ConnectionResetError())


def test_aiosmtpd_asks_check_auth_needed_before_each_command_that_needs_auth():
    check = SMTP.check_auth_needed
    assert inspect.iscoroutinefunction(check)
    assert list(inspect.signature(check).parameters) == ["self", "caller_method"]
    for command in ("smtp_HELP", "smtp_VRFY", "smtp_MAIL", "smtp_RCPT", "smtp_DATA"):
        source = inspect.getsource(getattr(SMTP, command))
        assert "await self.check_auth_needed(" in source, command


def test_check_helo_needed_is_as_the_sessions_call_it():
    check = SMTP.check_helo_needed
    assert inspect.iscoroutinefunction(check)
    assert str(inspect.signature(check)) == "(self, helo: str = 'HELO') -> bool"


def test_aiosmtpd_marks_the_session_as_tls_when_starttls_completes():
    # tls_active() reads the public session.ssl, which aiosmtpd fills in only here.
    assert "self.session.ssl = " in inspect.getsource(SMTP.connection_made)
    assert "self._create_session()" in inspect.getsource(SMTP.connection_made)


# aiosmtpd's own replies, as the client sees them ---------------------------------------------

# Every reply text in aiosmtpd's source (its first literal part) -> a sample as aiosmtpd
# sends it -> what the client gets after with_enhanced_status. None: sent unmarked by the
# session itself (the greeting and the HELO and EHLO replies, which RFC 2034 leaves bare).
AIOSMTPD_REPLIES: dict[str, tuple[str, str | None]] = {
    "220 {} {}": ("220 mx.test mailcore ESMTP", None),
    "250 {}": ("250 mx.test", None),
    "250-": ("250-mx.test", None),
    "250-SIZE ": ("250-SIZE 1000", None),
    "250-8BITMIME": ("250-8BITMIME", None),
    "250-SMTPUTF8": ("250-SMTPUTF8", None),
    "250-STARTTLS": ("250-STARTTLS", None),
    "250-AUTH ": ("250-AUTH LOGIN PLAIN", None),
    "250 HELP": ("250 HELP", None),
    "{} Supported commands: {}": ("250 Supported commands: DATA EHLO",
                                  "250 2.0.0 Supported commands: DATA EHLO"),
    "250 Syntax: ": ("250 Syntax: DATA", "250 2.0.0 Syntax: DATA"),
    "250 OK": ("250 OK", "250 2.0.0 OK"),
    "221 Bye": ("221 Bye", "221 2.0.0 Bye"),
    "220 Ready to start TLS": ("220 Ready to start TLS", "220 2.0.0 Ready to start TLS"),
    "252 Cannot VRFY user, but will accept message and attempt delivery": (
        "252 Cannot VRFY user, but will accept message and attempt delivery",
        "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"),
    "235 2.7.0 Authentication successful": ("235 2.7.0 Authentication successful",) * 2,
    "354 End data with <CR><LF>.<CR><LF>": ("354 End data with <CR><LF>.<CR><LF>",) * 2,
    "421 4.7.0 ": ("421 4.7.0 MAIL sent too many times",) * 2,
    "454 TLS not available": ("454 TLS not available", "454 4.7.0 TLS not available"),
    "500 Error: ({}) {}": ("500 Error: (ValueError) x", "500 5.5.2 Error: (ValueError) x"),
    "500 Error: Cannot describe error": ("500 Error: Cannot describe error",
                                         "500 5.5.2 Error: Cannot describe error"),
    "500 Command line too long": ("500 Command line too long",
                                  "500 5.5.2 Command line too long"),
    "500 Error: bad syntax": ("500 Error: bad syntax", "500 5.5.2 Error: bad syntax"),
    "500 Error: strict ASCII mode": ("500 Error: strict ASCII mode",
                                     "500 5.5.2 Error: strict ASCII mode"),
    '500 Error: command "': ('500 Error: command "BOGUS" not recognized',
                             '500 5.5.2 Error: command "BOGUS" not recognized'),
    "500 Error: command 'AUTH' not recognized": (
        "500 Error: command 'AUTH' not recognized",
        "500 5.5.2 Error: command 'AUTH' not recognized"),
    "500 Line too long (see RFC5321 4.5.3.1.6)": (
        "500 Line too long (see RFC5321 4.5.3.1.6)",
        "500 5.5.2 Line too long (see RFC5321 4.5.3.1.6)"),
    "501 Syntax: HELO hostname": ("501 Syntax: HELO hostname",
                                  "501 5.5.4 Syntax: HELO hostname"),
    "501 Syntax: EHLO hostname": ("501 Syntax: EHLO hostname",
                                  "501 5.5.4 Syntax: EHLO hostname"),
    "501 Syntax: QUIT": ("501 Syntax: QUIT", "501 5.5.4 Syntax: QUIT"),
    "501 Syntax: STARTTLS": ("501 Syntax: STARTTLS", "501 5.5.4 Syntax: STARTTLS"),
    "501 Syntax: RSET": ("501 Syntax: RSET", "501 5.5.4 Syntax: RSET"),
    "501 Syntax: DATA": ("501 Syntax: DATA", "501 5.5.4 Syntax: DATA"),
    "501 Syntax: VRFY <address>": ("501 Syntax: VRFY <address>",
                                   "501 5.5.4 Syntax: VRFY <address>"),
    "501 Syntax: MAIL FROM: <address>": (
        "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
        "501 5.5.4 Syntax: MAIL FROM: <address> [SP <mail-parameters>]"),
    "501 Syntax: RCPT TO: <address>": ("501 Syntax: RCPT TO: <address>",
                                       "501 5.5.4 Syntax: RCPT TO: <address>"),
    "501 Not enough value": ("501 Not enough value", "501 5.5.4 Not enough value"),
    "501 Too many values": ("501 Too many values", "501 5.5.4 Too many values"),
    "501 Error: BODY can only be one of 7BIT, 8BITMIME": (
        "501 Error: BODY can only be one of 7BIT, 8BITMIME",
        "501 5.5.4 Error: BODY can only be one of 7BIT, 8BITMIME"),
    "501 Error: SMTPUTF8 takes no arguments": (
        "501 Error: SMTPUTF8 takes no arguments",
        "501 5.5.4 Error: SMTPUTF8 takes no arguments"),
    "501 Error: SMTPUTF8 disabled": ("501 Error: SMTPUTF8 disabled",
                                     "501 5.5.4 Error: SMTPUTF8 disabled"),
    "501 5.7.0 Auth aborted": ("501 5.7.0 Auth aborted",) * 2,
    "501 5.5.2 Can't decode base64": ("501 5.5.2 Can't decode base64",) * 2,
    "501 5.5.2 Can't split auth value": ("501 5.5.2 Can't split auth value",) * 2,
    "502 5.5.1 Too many unrecognized commands, goodbye.": (
        "502 5.5.1 Too many unrecognized commands, goodbye.",) * 2,
    "502 Could not VRFY ": ("502 Could not VRFY x@", "502 5.5.1 Could not VRFY x@"),
    "502 EXPN not implemented": ("502 EXPN not implemented",
                                 "502 5.5.1 EXPN not implemented"),
    "503 Error: send ": ("503 Error: send HELO first", "503 5.5.1 Error: send HELO first"),
    "503 Already authenticated": ("503 Already authenticated",
                                  "503 5.5.1 Already authenticated"),
    "503 Error: nested MAIL command": ("503 Error: nested MAIL command",
                                       "503 5.5.1 Error: nested MAIL command"),
    "503 Error: need MAIL command": ("503 Error: need MAIL command",
                                     "503 5.5.1 Error: need MAIL command"),
    "503 Error: need RCPT command": ("503 Error: need RCPT command",
                                     "503 5.5.1 Error: need RCPT command"),
    "504 5.5.4 Unrecognized authentication type": (
        "504 5.5.4 Unrecognized authentication type",) * 2,
    "530 5.7.0 Authentication required": ("530 5.7.0 Authentication required",) * 2,
    "530 Must issue a STARTTLS command first": (
        "530 Must issue a STARTTLS command first",
        "530 5.7.0 Must issue a STARTTLS command first"),
    "535 5.7.8 Authentication credentials invalid": (
        "535 5.7.8 Authentication credentials invalid",) * 2,
    "538 5.7.11 Encryption required for requested authentication mechanism": (
        "538 5.7.11 Encryption required for requested authentication mechanism",) * 2,
    "552 Error: message size exceeds fixed maximum message size": (
        "552 Error: message size exceeds fixed maximum message size",
        "552 5.3.4 Error: message size exceeds fixed maximum message size"),
    "552 Error: Too much mail data": ("552 Error: Too much mail data",
                                      "552 5.3.4 Error: Too much mail data"),
    "553 5.1.3 Error: malformed address": ("553 5.1.3 Error: malformed address",) * 2,
    "554 Command refused due to lack of security": (
        "554 Command refused due to lack of security",
        "554 5.0.0 Command refused due to lack of security"),
    "555 MAIL FROM parameters not recognized or not implemented": (
        "555 MAIL FROM parameters not recognized or not implemented",
        "555 5.5.4 MAIL FROM parameters not recognized or not implemented"),
    "555 RCPT TO parameters not recognized or not implemented": (
        "555 RCPT TO parameters not recognized or not implemented",
        "555 5.5.4 RCPT TO parameters not recognized or not implemented"),
}


def test_the_reply_list_is_every_reply_in_aiosmtpds_source():
    tree = ast.parse(AIOSMTPD_SOURCE)
    found = {node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and re.match(r"\d{3}[ -]|\{\} ", node.value)}
    assert found == set(AIOSMTPD_REPLIES), (
        "aiosmtpd's replies changed: check how each new one reaches the client")


@pytest.mark.parametrize(("sample", "expected"),
                         [v for v in AIOSMTPD_REPLIES.values() if v[1] is not None],
                         ids=[k for k, v in AIOSMTPD_REPLIES.items() if v[1] is not None])
def test_each_aiosmtpd_reply_gets_an_enhanced_status_code(sample, expected):
    assert adapter.with_enhanced_status(sample) == expected
    if sample[:3] not in ("334", "354"):
        assert re.match(r"\d{3} [245]\.\d{1,3}\.\d{1,3} ", expected)


def test_only_aiosmtpds_reply_to_too_many_unknown_commands_ends_the_session_for_them():
    ending = [s for s, _ in AIOSMTPD_REPLIES.values() if adapter.ends_for_unknown_commands(s)]
    assert ending == ["502 5.5.1 Too many unrecognized commands, goodbye."]


def test_input_pending_sees_bytes_the_command_loop_has_not_read(loop):
    async def look() -> tuple[bool, bool]:
        protocol = adapter.SMTPProtocol(InboundHandler(), hostname="mx.test", loop=loop)
        protocol.connection_made(_Transport())
        before = protocol.input_pending()
        protocol.line_reader().feed_data(b"NOOP")  # no line end: the loop waits for more
        await asyncio.sleep(0)
        after = protocol.input_pending()
        protocol.connection_lost(None)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        await asyncio.gather(*others, return_exceptions=True)
        return before, after

    assert loop.run_until_complete(look()) == (False, True)


# The path parser --------------------------------------------------------------------------

@pytest.mark.parametrize("arg", [
    "", "<a@b.example>", "<a.b+c@mx.example.test> SIZE=100 BODY=8BITMIME", "<>",
    "<a@b.example>junk", "<a..b@c.example>", "<.a@b.example>", '<"quoted local"@b.example>',
    "<a@[127.0.0.1]>", "a@b.example", " <a@b.example>", "<a@b", "<@relay.example:a@b.example>",
    "<" + "x" * 70 + "@b.example>", "<a@b.example> ", "<a@-b.example>",
    "<a@b.example>  (comment) SIZE=1", "<a@b.example>\tSIZE=1", "<a@b.example> SIZE=1 ",
])
def test_the_path_parser_answers_as_aiosmtpds_own(arg, loop):
    # aiosmtpd calls _getaddr from its MAIL, RCPT and VRFY; ours must answer exactly as its
    # own (the local part limit included: 64 when SMTPUTF8 is off).
    ours = adapter.SMTPProtocol(InboundHandler(), hostname="mx.test", loop=loop)
    theirs = SMTP(object(), hostname="mx.test", loop=loop)
    ours.local_part_limit = theirs.local_part_limit = 64
    try:
        expected = SMTP._getaddr(theirs, arg)  # noqa: SLF001
    except Exception as exc:  # aiosmtpd raises on some truncated paths; so must ours
        with pytest.raises(type(exc)):
            ours._getaddr(arg)  # noqa: SLF001
        return
    assert ours._getaddr(arg) == expected  # noqa: SLF001


def test_aiosmtpd_parses_paths_through_getaddr():
    for command in ("smtp_MAIL", "smtp_RCPT", "smtp_VRFY"):
        assert "self._getaddr(" in inspect.getsource(getattr(SMTP, command)), command
