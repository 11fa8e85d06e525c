"""Every IMAP reply text, with its response code (RFC 5530 and the extensions') where one applies.

Texts are used after "tag OK", "tag NO", "tag BAD" or "* BYE"; which one is decided where
the handler's exception is mapped (mailcore.imap.session), not here.
"""

from __future__ import annotations

# Untagged OK/BYE.
GREETING = "[CAPABILITY {capabilities}] mailcore IMAP server ready"
LOGOUT = "Logging out"
TIMEOUT = "Autologout; idle for too long"
SHUTTING_DOWN = "[UNAVAILABLE] Server shutting down"
TOO_MANY_ERRORS = "Too many errors; closing connection"
TOO_MANY_FAILURES = "[AUTHENTICATIONFAILED] Too many failed logins; closing connection"
LITERAL_TOO_BIG_CLOSING = "[TOOBIG] Literal too large; closing connection"
PIPELINED_STARTTLS = "Data after STARTTLS; closing connection"
FOLDER_DELETED = "[CLOSED] The selected folder was deleted; closing connection"
CLOSED = "[CLOSED] Previous folder closed"
PERMANENT_FLAGS = "[PERMANENTFLAGS ({flags})] Flags permitted"
NO_PERMANENT_FLAGS = "[PERMANENTFLAGS ()] Read-only folder"
UIDVALIDITY = "[UIDVALIDITY {value}] UIDs valid"
UIDNEXT = "[UIDNEXT {value}] Predicted next UID"
UNSEEN = "[UNSEEN {value}] First unseen message"
HIGHESTMODSEQ = "[HIGHESTMODSEQ {value}] Highest mod-sequence"
MOVED = "[COPYUID {uidvalidity} {source} {target}] Moved"
NO_UPDATE = "[NOUPDATE {tag}] Too many updating searches; this one is not kept up to date"
NOTIFICATION_OVERFLOW = "[NOTIFICATIONOVERFLOW] Too many mailboxes to watch; NOTIFY is off"

# Continuations.
LITERAL_READY = "Ready for literal data"
IDLING = "idling"
STARTTLS_OK = "Begin TLS negotiation now"
COMPRESSING = "DEFLATE active"

# Tagged OK.
COMPLETED = "{verb} completed"
LOGGED_IN = "[CAPABILITY {capabilities}] Logged in"
SELECTED = "[{access}] {verb} completed"
APPENDED = "[APPENDUID {uidvalidity} {uids}] APPEND completed"
COPIED = "[COPYUID {uidvalidity} {source} {target}] COPY completed"
CONDITIONAL_STORE_FAILED = "[MODIFIED {numbers}] Conditional STORE failed"
EXPUNGED_MODSEQ = "[HIGHESTMODSEQ {value}] {verb} completed"
NOTHING_TO_DO = "No messages matched; {verb} completed"

# Tagged BAD (and untagged BAD when no tag could be read).
UNKNOWN_COMMAND = "Unknown command"
WRONG_STATE = "{verb} not valid in this state"
BAD_SYNTAX = "Syntax error: {detail}"
LINE_TOO_LONG = "[TOOBIG] Line too long"
LITERAL_TOO_BIG = "[TOOBIG] Literal too large"
COMMAND_TOO_BIG = "[TOOBIG] Command too large"
INVALID_SEQUENCE = "Invalid message sequence number"
IDLE_EXPECTED_DONE = "Expected DONE to end IDLE"
AUTH_CANCELLED = "Authentication cancelled"
BAD_SASL = "Invalid SASL response"
ALREADY_TLS = "TLS is already active"
QRESYNC_NOT_ENABLED = "Enable QRESYNC first (RFC 7162 section 3.2.3)"
VANISHED_NEEDS_CHANGEDSINCE = "VANISHED needs UID FETCH with CHANGEDSINCE and QRESYNC enabled"
UNKNOWN_COMPRESSION = "Unknown compression algorithm"
COMPRESSION_ACTIVE = "[COMPRESSIONACTIVE] DEFLATE active via COMPRESS"
CHARSET_AFTER_UTF8 = "UTF8=ACCEPT is enabled: strings are UTF-8, name no other charset"
TAG_IN_USE = "Tag reuse: that tag names an updating search"
NOTIFY_SELECTED_TWICE = "SELECTED and SELECTED-DELAYED cannot both be given"
NOTIFY_SELECTED_EVENTS = "Only message events go with SELECTED and SELECTED-DELAYED"
NOTIFY_EVENT_PAIRS = ("MessageNew and MessageExpunge go together, and FlagChange needs both")

# Tagged NO.
TLS_UNAVAILABLE = "TLS not available"
PLAINTEXT_DISALLOWED = ("[PRIVACYREQUIRED] Plaintext authentication disallowed on "
                        "non-secure connections; use STARTTLS")
AUTH_FAILED = "[AUTHENTICATIONFAILED] Authentication failed"
AUTH_RATE_LIMITED = "[UNAVAILABLE] Too many failed logins; try again later"
UNSUPPORTED_MECHANISM = "Unsupported authentication mechanism"
NO_SUCH_FOLDER = "[NONEXISTENT] No such folder"
TRY_CREATE = "[TRYCREATE] No such folder"
READ_ONLY = "[READ-ONLY] The folder is open read-only (EXAMINE)"
OVER_QUOTA = "[OVERQUOTA] Quota exceeded"
MESSAGE_TOO_BIG = "[TOOBIG] Message larger than the APPENDLIMIT of {limit} octets"
EMPTY_MESSAGE = "[CANNOT] Cannot store an empty message"
FOLDER_ERROR = "[{code}] {text}"
INVALID_NAME = "[CANNOT] Mailbox name is not valid modified UTF-7"
ONE_SPECIAL_USE = "[USEATTR] A folder can have one special use"
EXPUNGE_ISSUED = "[EXPUNGEISSUED] Some of the requested messages no longer exist"
NO_QUOTA_ROOT = "[NONEXISTENT] No such quota root"
QUOTA_NOT_SETTABLE = "[NOPERM] Quotas are set by the mail host"
UNKNOWN_CTE = "[UNKNOWN-CTE] Cannot decode the content transfer encoding"
BAD_EVENT = "[BADEVENT ({events})] Unsupported event"
NOTIFY_TOO_MANY = "[NOTIFICATIONOVERFLOW] Too many mailboxes to watch"
TEMPORARY_FAILURE = "[UNAVAILABLE] Temporary failure; try again later (session {session})"
