"""Every SMTP reply mailcore writes itself: code, enhanced status code (RFC 3463), text."""

from __future__ import annotations

from typing import NamedTuple


class Reply(NamedTuple):
    code: int
    status: str
    text: str

    def format(self, **values: object) -> str:
        text = self.text.format(**values)
        return f"{self.code} {self.status} {text}" if self.status else f"{self.code} {text}"


OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
QUEUED = Reply(250, "2.0.0", "OK: queued as {queue_id}")
START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")  # intermediate: no status
BAD_SENDER = Reply(553, "5.1.7", "Bad sender address syntax")
# A reverse-path that does not parse at all: a syntax error, 501 as Postfix says it.
SENDER_SYNTAX = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT = Reply(501, "5.1.3", "Bad recipient address syntax")
UNKNOWN_USER = Reply(550, "5.1.1", "No such user here")
RELAY_DENIED = Reply(554, "5.7.1", "Relay access denied")
SRS_BOUNCES_ONLY = Reply(550, "5.7.1", "SRS addresses accept bounces only (null sender)")
MAILBOX_FULL = Reply(452, "4.2.2", "Mailbox full, try again later")
MAILBOX_FULL_FOR_MESSAGE = Reply(552, "5.2.2", "Mailbox full: {addresses}")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
TLS_ALREADY_ACTIVE = Reply(503, "5.5.1", "TLS already active")
CANNOT_VRFY = Reply(502, "5.5.1", "Could not VRFY {address}")  # aiosmtpd's own text
NEED_SENDER = Reply(503, "5.5.1", "Error: need MAIL command")
NEED_RECIPIENT = Reply(503, "5.5.1", "Error: need RCPT command")
DATA_SYNTAX = Reply(501, "5.5.4", "Syntax: DATA")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long (RFC 5321 section 4.5.3.1.6)")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message exceeds fixed maximum message size")
MESSAGE_HAS_NUL = Reply(554, "5.6.0", "Message contains NUL characters")
LOOP_DETECTED = Reply(554, "5.4.6", "Too many Received headers: mail loop detected")
# The inbound checks' refusals at the end of DATA (mailcore.inbound): the verdict gives the
# enhanced status code and the reason.
REFUSED = Reply(550, "5.7.1", "{reason}")
REFUSED_FOR_NOW = Reply(451, "4.7.1", "{reason}")
TEMPORARY_FAILURE = Reply(451, "4.3.0", "Temporary failure, try again later (session {session})")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "{hostname} Too many errors, closing connection")
TIMEOUT = Reply(421, "4.4.2", "{hostname} Timeout exceeded, closing connection")
SHUTTING_DOWN = Reply(421, "4.3.2", "{hostname} Service shutting down, closing connection")

# Submission (RFC 6409) and AUTH (RFC 4954).
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")  # aiosmtpd's own text
AUTH_NEEDS_TLS = Reply(538, "5.7.11",
                       "Encryption required for requested authentication mechanism")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_RATE_LIMITED = Reply(454, "4.7.0", "Too many failed logins, try again later")
AUTH_CANCELLED = Reply(501, "5.7.0", "Authentication cancelled")
AUTH_MALFORMED = Reply(501, "5.5.2", "Cannot decode the authentication response")
AUTH_IN_TRANSACTION = Reply(503, "5.5.1", "AUTH is not allowed during a mail transaction")
AUTH_TOO_MANY_FAILURES = Reply(421, "4.7.0",
                               "{hostname} Too many failed logins, closing connection")
SENDER_NOT_YOURS = Reply(553, "5.7.1", "Sender address <{address}> is not yours to send as")
FROM_NOT_YOURS = Reply(553, "5.7.1", "From header address <{address}> is not yours to send as")
FROM_MISSING_ADDRESS = Reply(553, "5.7.1", "The From header names no address")
# Nothing is sent for a domain whose ownership nobody has proven (pending claims).
SENDER_DOMAIN_NOT_VERIFIED = Reply(550, "5.7.1",
                                   "Sender address <{address}> refused: domain not verified")
FROM_DOMAIN_NOT_VERIFIED = Reply(550, "5.7.1",
                                 "From header address <{address}> refused: domain not verified")
SEND_LIMIT_REACHED = Reply(450, "4.7.1",
                           "Sending limit of {limit} messages per hour reached, try again later")

# Enhanced status codes for the replies aiosmtpd writes itself, which carry none. (220 is
# STARTTLS's "Ready to start TLS"; the greeting goes out unmarked.)
DEFAULT_STATUS: dict[int, str] = {
    211: "2.0.0", 214: "2.0.0", 220: "2.0.0", 221: "2.0.0", 235: "2.7.0", 250: "2.0.0",
    252: "2.0.0",
    421: "4.7.0", 450: "4.2.0", 451: "4.3.0", 452: "4.3.1", 454: "4.7.0",
    500: "5.5.2", 501: "5.5.4", 502: "5.5.1", 503: "5.5.1", 504: "5.5.4", 530: "5.7.0",
    534: "5.7.9", 535: "5.7.8", 538: "5.7.11", 550: "5.0.0", 552: "5.3.4", 553: "5.1.0",
    554: "5.0.0", 555: "5.5.4",
}
