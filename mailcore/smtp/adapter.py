"""aiosmtpd adapted to mailcore: the one module that relies on more than aiosmtpd's public API.

The SMTP sessions use aiosmtpd (checked against AIOSMTPD_VERSION) through its public API:
constructor arguments, handler hooks (handle_*), smtp_* command overrides, push, session,
envelope, transport, loop, event_handler. What it offers no public way to do is held here,
and tests/test_smtp_adapter.py pins each item, so an aiosmtpd upgrade that changes one
fails the tests instead of the mail:

- ``SMTP._reader``, the stream aiosmtpd reads commands from (set in
  ``_cb_client_connected``, read in ``_handle_client``): our DATA reader (bare LF
  normalised, only CRLF.CRLF ends the data) and our AUTH challenges read their lines from
  it, and input_pending() looks into its buffer (asyncio's ``StreamReader._buffer``).
  aiosmtpd's public ``challenge_auth`` sends its own replies and reads with
  ``readline``, which has no way to drain an overlong line; no public reader exists.
- aiosmtpd's own reply texts: they carry no enhanced status code (RFC 2034), so
  with_enhanced_status() adds one by reply code; and the reply aiosmtpd closes with after
  its own count of unknown verbs (a 502, which RFC 5321 section 3.8 does not allow) is
  recognised by ends_for_unknown_commands(), so the session can say 421 instead.
- ``SMTP._getaddr``, the path parser MAIL, RCPT and VRFY call: aiosmtpd's defines a
  typing Protocol class at every call (a class creation, with its ABC machinery, per MAIL
  and RCPT: several per cent of a delivery's CPU). Ours parses the same way and returns
  the same results, and takes a plain ``<dot-atom@domain>`` path apart without the
  header parser (which always accepts one).
- ``SMTP.check_auth_needed`` (public name, undocumented): the submission session overrides
  it, which relies on aiosmtpd's commands asking it.

Everything else is done by public means. aiosmtpd's timeout counts from the last command
and would cut off a big message on a slow link, so it is set never to fire and this class
runs an idle timer of its own (RFC 5321 section 4.5.3.2). Nothing was contributed upstream
yet: a public line reader and a TLS flag covering implicit TLS would retire most of this.
"""

from __future__ import annotations

import asyncio
import math
import re
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError

from aiosmtpd.smtp import SMTP

from mailcore.smtp import replies

# The aiosmtpd release the list above was checked against; the adapter's test fails on any
# other, so whoever upgrades re-checks each item.
AIOSMTPD_VERSION = "1.4.6"

# A path of dot-atoms in angle brackets, as nearly all mail has (RFC 5321 section 4.1.2),
# and what follows it (the mail parameters).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_PATH = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?= |$)")
# A reply that has a code but no enhanced status code after it.
_UNMARKED = re.compile(r"^(\d{3})([ -])(?!\d\.\d{1,3}\.\d{1,3}\b)(.*)$", re.S)
# aiosmtpd's reply when it closes for too many unrecognised commands (BOGUS_LIMIT).
_UNKNOWN_COMMANDS_LIMIT = "502 5.5.1 Too many unrecognized commands"


def with_enhanced_status(status: str) -> str:
    """Return a reply with an enhanced status code (RFC 3463) if it has none and should.

    aiosmtpd's own replies carry none; the code for each basic reply code comes from
    replies.DEFAULT_STATUS. Replies that have one, and intermediate ones (334, 354), pass.
    """
    match = _UNMARKED.match(status)
    if match is None:
        return status
    enhanced = replies.DEFAULT_STATUS.get(int(match.group(1)))
    if enhanced is None:
        return status
    return f"{match.group(1)}{match.group(2)}{enhanced} {match.group(3)}"


def ends_for_unknown_commands(status: str) -> bool:
    """Return whether this is aiosmtpd's reply before it closes for unknown commands."""
    return status.startswith(_UNKNOWN_COMMANDS_LIMIT)


class SMTPProtocol(SMTP):
    """aiosmtpd's SMTP protocol with an idle timeout and access to its line reader."""

    def __init__(self, handler: object, *, timeout: float = 300, **kwargs) -> None:
        # aiosmtpd's own timer never fires (math.inf); idle_timer below replaces it.
        super().__init__(handler, timeout=math.inf, **kwargs)
        self.idle_timeout = timeout
        self.last_activity = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again with the TLS transport after STARTTLS: the handshake was activity.
        super().connection_made(transport)
        self.last_activity = self.loop.time()
        if self.idle_timer is None:
            self.idle_timer = self.loop.call_later(self.idle_timeout, self.check_idle)

    def connection_lost(self, error: Exception | None) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        if self.session is None:
            # Never made: on implicit TLS the protocol goes to loop.start_tls before its
            # connection_made, and asyncio tells it of a connection reset during the
            # handshake all the same (a load balancer's health check that hangs up).
            # aiosmtpd's connection_lost assumes a made connection and would assert.
            return
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        super().data_received(data)

    def check_idle(self) -> None:
        """Time out a connection idle for idle_timeout seconds; otherwise check again then."""
        idle = self.loop.time() - self.last_activity
        if idle < self.idle_timeout:
            self.idle_timer = self.loop.call_later(self.idle_timeout - idle, self.check_idle)
            return
        self.timed_out()

    def timed_out(self) -> None:
        """Close the idle connection (a subclass says why first)."""
        if self.transport is not None:
            self.transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """Return (address, the rest of arg) from a MAIL/RCPT/VRFY path, (None, None) if it
        does not parse, ("", "") for none: as aiosmtpd's own, without its per-call class."""
        if not arg:
            return "", ""
        plain = PLAIN_PATH.match(arg)
        # The parser also takes the blanks after the path, and a comment there: leave a
        # comment to it.
        rest = arg[plain.end():].lstrip(" ") if plain is not None else "("
        if plain is not None and not rest.startswith("("):
            address = plain.group(1)
        else:
            try:
                if arg.lstrip().startswith("<"):
                    parsed, rest = get_angle_addr(arg)
                else:
                    parsed, rest = get_addr_spec(arg)
            except HeaderParseError:
                return None, None
            address = parsed.addr_spec
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    def tls_active(self) -> bool:
        """Return whether the session runs inside TLS (STARTTLS, or set so for implicit TLS)."""
        # aiosmtpd sets session.ssl when STARTTLS completes (a new Session: RFC 3207 4.2).
        return self.session is not None and self.session.ssl is not None

    def line_reader(self) -> asyncio.StreamReader:
        """Return the stream aiosmtpd reads commands from, for reading DATA and AUTH lines."""
        return self._reader

    def input_pending(self) -> bool:
        """Return whether the client sent bytes not read yet (a pipelined command)."""
        reader = getattr(self, "_reader", None)
        return reader is not None and bool(reader._buffer)  # noqa: SLF001
