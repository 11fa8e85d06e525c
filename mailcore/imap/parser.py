"""IMAP client commands (RFC 3501, RFC 9051 and extensions) parsed into typed arguments."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mailcore.imap import catenate
from mailcore.imap.catenate import CatPart
from mailcore.imap.fetchitems import Fetch, FetchItem, Section, parse_fetch
from mailcore.imap.lexer import (
    LITERAL_MINUS_MAX,
    MAX_NUMBER64,
    LiteralMarker,
    Reader,
    find_literal,
)
from mailcore.imap.notifygrammar import Notify, parse_notify
from mailcore.imap.searchgrammar import BadCharset, Search, parse_search
from mailcore.imap.sortgrammar import parse_sort, parse_thread
from mailcore.message.sequenceset import SequenceSet
from mailcore.sessions import BadSyntax

__all__ = [
    # Re-exported from the lexer, search and fetch grammars: the session needs only this module.
    "LITERAL_MINUS_MAX", "BadCharset", "Fetch", "FetchItem", "LiteralMarker", "Search",
    "Notify", "Section", "find_literal",
    "Append", "AppendMessage", "Authenticate", "CancelUpdate", "Command", "CommandSyntaxError",
    "Copy",
    "Create", "Enable", "Expunge", "GetQuota", "Id", "List", "Login", "MailboxName", "QResync",
    "Rename", "Select", "SetQuota", "Status", "Store", "Unknown", "parse_command",
]

STATUS_ITEMS = frozenset({
    "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
    "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID",
})
LIST_SELECT_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
LIST_RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})
SPECIAL_USES = {u.upper(): u for u in (
    "\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", "\\Important")}
MAX_ID_PAIRS = 30  # RFC 2971 section 3.3

_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]+={0,2}|=)(?=[\r\n]|\Z)")


class CommandSyntaxError(BadSyntax):
    """A command that does not parse; tag is None when not even the tag could be read."""

    def __init__(self, text: str, tag: str | None, verb: str | None) -> None:
        super().__init__(text)
        self.tag = tag
        self.verb = verb


@dataclass(frozen=True)
class Command:
    """One parsed command: tag, upper-case name, UID prefix, and per-command arguments."""

    tag: str
    name: str  # "FETCH" for both FETCH and UID FETCH
    uid: bool = False
    args: object = None  # one of the argument classes below, or None

    @property
    def verb(self) -> str:
        """Return the name as the client spelled the command, e.g. "UID FETCH"."""
        return f"UID {self.name}" if self.uid else self.name


@dataclass(frozen=True)
class Unknown:
    """A command this parser does not know: the bytes after its name, for the session."""

    raw: bytes


@dataclass(frozen=True)
class Authenticate:
    mechanism: str  # upper-case
    initial_response: str | None = None  # SASL-IR (RFC 4959): base64 or "=" for empty


@dataclass(frozen=True)
class Login:
    username: str
    password: str


@dataclass(frozen=True)
class Enable:
    capabilities: tuple[str, ...]  # upper-case


@dataclass(frozen=True)
class QResync:
    """QRESYNC select parameters (RFC 7162 section 3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None  # (sequence numbers, UIDs)


@dataclass(frozen=True)
class Select:
    """SELECT or EXAMINE."""

    mailbox: str
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True)
class Create:
    mailbox: str
    special_use: tuple[str, ...] = ()  # CREATE ... (USE (\Sent)) (RFC 6154 section 3)


@dataclass(frozen=True)
class MailboxName:
    """The single mailbox argument of DELETE, SUBSCRIBE, UNSUBSCRIBE and GETQUOTAROOT."""

    mailbox: str


@dataclass(frozen=True)
class Rename:
    mailbox: str
    new_name: str


@dataclass(frozen=True)
class List:
    """LIST (basic or RFC 5258 extended) and LSUB."""

    reference: str
    patterns: tuple[str, ...]
    select_options: frozenset[str] = frozenset()
    return_options: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()  # RETURN (STATUS (...)), RFC 5819
    extended: bool = False  # any RFC 5258 syntax was used


@dataclass(frozen=True)
class Status:
    mailbox: str
    items: tuple[str, ...]  # upper-case, from STATUS_ITEMS


@dataclass(frozen=True)
class AppendMessage:
    data: bytes
    flags: tuple[str, ...] = ()
    date: datetime | None = None
    binary: bool = False  # sent as literal8 (RFC 3516)
    utf8: bool = False  # sent as UTF8 (literal8) (RFC 6855 section 4)
    catenate: tuple[CatPart, ...] | None = None  # CATENATE's parts (RFC 4469); data b""


@dataclass(frozen=True)
class Append:
    mailbox: str
    messages: tuple[AppendMessage, ...]  # more than one with MULTIAPPEND (RFC 3502)


@dataclass(frozen=True)
class Expunge:
    sequence: SequenceSet | None = None  # the UID set of UID EXPUNGE (RFC 4315)


@dataclass(frozen=True)
class Store:
    sequence: SequenceSet
    mode: str  # "replace" (FLAGS), "add" (+FLAGS) or "remove" (-FLAGS)
    flags: tuple[str, ...]
    silent: bool = False
    unchanged_since: int | None = None  # (UNCHANGEDSINCE n), RFC 7162


@dataclass(frozen=True)
class Copy:
    """COPY or MOVE (RFC 6851)."""

    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True)
class GetQuota:
    root: str


@dataclass(frozen=True)
class SetQuota:
    root: str
    limits: tuple[tuple[str, int], ...]  # (upper-case resource, limit)


@dataclass(frozen=True)
class CancelUpdate:
    tags: tuple[str, ...]  # the tags of the updating searches (RFC 5267 section 4.3.5)


@dataclass(frozen=True)
class Id:
    params: tuple[tuple[str, str | None], ...] | None  # None for ID NIL


def parse_command(data: bytes, *, utf8: bool = False) -> Command:
    """Parse one complete command: its lines and literals joined as received.

    utf8 says UTF8=ACCEPT or IMAP4rev2 is enabled, so mailbox names are UTF-8 rather
    than modified UTF-7. Raise CommandSyntaxError (a BadSyntax) for a malformed
    command, or BadCharset (a Refused) for SEARCH with an unknown charset; both carry
    the tag and verb when those were read.
    """
    reader = Reader(data, utf8=utf8)
    tag = verb = None
    try:
        maybe_tag = reader.tag()
        if not reader.take(b" ") and not reader.at_end():
            raise BadSyntax("bad tag")
        tag = maybe_tag
        if reader.at_end():
            raise BadSyntax("missing command name")
        name = verb = reader.keyword()
        uid = name == "UID"
        if uid:
            reader.space()
            name = reader.keyword()
            verb = f"UID {name}"
        parse = (_UID_COMMANDS if uid else _COMMANDS).get(name)
        if parse is None:
            raw = data[reader.pos:].removeprefix(b" ").rstrip(b"\r\n")
            return Command(tag, name, uid, Unknown(raw))
        args = parse(reader, uid)
        reader.end()
    except BadSyntax as e:
        raise CommandSyntaxError(e.text, tag, verb) from None
    except BadCharset as e:
        e.tag, e.verb = tag, verb
        raise
    return Command(tag, name, uid, args)


def _no_arguments(r: Reader, uid: bool) -> None:
    return None


def _authenticate(r: Reader, uid: bool) -> Authenticate:
    r.space()
    mechanism = r.keyword()
    if not r.take(b" "):
        return Authenticate(mechanism)
    match = _BASE64.match(r.data, r.pos)
    if match is None:
        raise BadSyntax("initial response is not base64")
    r.pos = match.end()
    return Authenticate(mechanism, match.group().decode("ascii"))


def _login(r: Reader, uid: bool) -> Login:
    r.space()
    username = r.astring()
    r.space()
    return Login(username, r.astring())


def _enable(r: Reader, uid: bool) -> Enable:
    capabilities = []
    while not r.at_end():
        r.space()
        capabilities.append(r.keyword())
    if not capabilities:
        raise BadSyntax("missing argument")
    return Enable(tuple(capabilities))


def _select(r: Reader, uid: bool) -> Select:
    # RFC 3501 section 6.3.1, RFC 7162 sections 3.1.8 and 3.2.5.
    r.space()
    mailbox = r.mailbox()
    condstore, qresync = False, None
    if r.take(b" "):
        r.open()
        while True:
            param = r.keyword()
            if param == "CONDSTORE" and not condstore:
                condstore = True
            elif param == "QRESYNC" and qresync is None:
                r.space()
                qresync = _qresync(r)
            else:
                raise BadSyntax("unknown or repeated select parameter")
            if not r.take(b" "):
                break
        r.close()
    return Select(mailbox, condstore, qresync)


def _qresync(r: Reader) -> QResync:
    r.open()
    uidvalidity = r.nz_number()
    r.space()
    modseq = r.nz_number(MAX_NUMBER64)
    known_uids = seq_match = None
    if r.take(b" ") and not r.peek(b"("):
        known_uids = r.sequence_set()
        if r.peek(b" ("):
            r.space()
    if r.peek(b"("):
        r.open()
        numbers = r.sequence_set()
        r.space()
        seq_match = (numbers, r.sequence_set())
        r.close()
    r.close()
    return QResync(uidvalidity, modseq, known_uids, seq_match)


def _create(r: Reader, uid: bool) -> Create:
    r.space()
    mailbox = r.mailbox()
    uses: list[str] = []
    if r.take(b" "):
        r.open()
        r.expect(b"USE", "USE")
        r.space()
        uses = r.paren_list(lambda: _special_use(r))
        r.close()
    return Create(mailbox, tuple(uses))


def _special_use(r: Reader) -> str:
    r.expect(b"\\", "a special-use attribute")
    name = "\\" + r.atom()
    return SPECIAL_USES.get(name.upper(), name)


def _mailbox(r: Reader, uid: bool) -> MailboxName:
    r.space()
    return MailboxName(r.mailbox())


def _rename(r: Reader, uid: bool) -> Rename:
    r.space()
    mailbox = r.mailbox()
    r.space()
    return Rename(mailbox, r.mailbox())


def _list(r: Reader, uid: bool) -> List:
    # RFC 3501 section 6.3.8, RFC 5258 section 3, RFC 6154 section 5, RFC 5819.
    r.space()
    select: list[str] = []
    extended = r.peek(b"(")
    if extended:
        select = r.paren_list(r.keyword)
        if set(select) - LIST_SELECT_OPTIONS:
            raise BadSyntax("unknown LIST selection option")
        if "RECURSIVEMATCH" in select and not {"SUBSCRIBED", "SPECIAL-USE"} & set(select):
            raise BadSyntax("RECURSIVEMATCH needs another selection option")
        r.space()
    reference = r.mailbox(inbox=False)
    r.space()
    if r.peek(b"("):
        extended = True
        patterns = r.paren_list(r.list_mailbox, empty=False)
    else:
        patterns = [r.list_mailbox()]
    returns: set[str] = set()
    status: list[str] = []
    if r.take(b" "):
        extended = True
        r.expect(b"RETURN", "RETURN")
        r.space()
        r.open()
        while not r.peek(b")"):
            option = r.keyword()
            if option not in LIST_RETURN_OPTIONS:
                raise BadSyntax("unknown LIST return option")
            if option == "STATUS":
                r.space()
                status = _status_items(r)
            returns.add(option)
            if not r.take(b" "):
                break
        r.close()
    return List(reference, tuple(patterns), frozenset(select), frozenset(returns),
                tuple(status), extended)


def _lsub(r: Reader, uid: bool) -> List:
    r.space()
    reference = r.mailbox(inbox=False)
    r.space()
    return List(reference, (r.list_mailbox(),))


def _status(r: Reader, uid: bool) -> Status:
    r.space()
    mailbox = r.mailbox()
    r.space()
    return Status(mailbox, tuple(_status_items(r)))


def _status_items(r: Reader) -> list[str]:
    items = r.paren_list(r.keyword, empty=False)
    if set(items) - STATUS_ITEMS:
        raise BadSyntax("unknown STATUS item")
    return items


def _append(r: Reader, uid: bool) -> Append:
    # RFC 3501 section 6.3.11, RFC 3502 (MULTIAPPEND), RFC 3516, RFC 6855 section 4,
    # RFC 4469 section 5 (CATENATE).
    r.space()
    mailbox = r.mailbox()
    messages = []
    while not r.at_end():
        r.space()
        flags: list[str] = []
        when = None
        if r.peek(b"("):
            flags = r.flag_list()
            r.space()
        if r.peek(b'"'):
            when = r.date_time()
            r.space()
        if r.take_word(b"CATENATE"):
            r.space()
            messages.append(AppendMessage(b"", tuple(flags), when,
                                          catenate=catenate.parse_parts(r)))
            continue
        utf8 = r.take_word(b"UTF8")
        if utf8:
            r.space()
            r.open()
        data, binary = r.literal(binary=True)
        if utf8:
            r.close()
        messages.append(AppendMessage(data, tuple(flags), when, binary, utf8))
    if not messages:
        raise BadSyntax("missing argument")
    return Append(mailbox, tuple(messages))


def _expunge(r: Reader, uid: bool) -> Expunge | None:
    if not uid:
        return None
    r.space()
    return Expunge(r.sequence_set())


def _compress(r: Reader, uid: bool) -> str:
    # RFC 4978 section 3: COMPRESS SP algorithm.
    r.space()
    return r.keyword()


def _search(r: Reader, uid: bool) -> Search:
    return parse_search(r)


def _store(r: Reader, uid: bool) -> Store:
    # RFC 3501 section 6.4.6, RFC 7162 section 3.1.3.
    r.space()
    sequence = r.sequence_set()
    r.space()
    unchanged_since = None
    if r.peek(b"("):
        r.open()
        r.expect(b"UNCHANGEDSINCE", "UNCHANGEDSINCE")
        r.space()
        unchanged_since = r.number(MAX_NUMBER64)
        r.close()
        r.space()
    mode = "add" if r.take(b"+") else "remove" if r.take(b"-") else "replace"
    item = r.keyword()
    if item not in ("FLAGS", "FLAGS.SILENT"):
        raise BadSyntax("expected FLAGS, +FLAGS or -FLAGS")
    r.space()
    if r.peek(b"("):
        flags = r.flag_list()
    else:
        flags = [r.flag()]
        while r.take(b" "):
            flags.append(r.flag())
    return Store(sequence, mode, tuple(flags), item == "FLAGS.SILENT", unchanged_since)


def _copy(r: Reader, uid: bool) -> Copy:
    r.space()
    sequence = r.sequence_set()
    r.space()
    return Copy(sequence, r.mailbox())


def _getquota(r: Reader, uid: bool) -> GetQuota:
    r.space()
    return GetQuota(r.astring())


def _setquota(r: Reader, uid: bool) -> SetQuota:
    # RFC 9208 section 4.1.4.
    r.space()
    root = r.astring()
    r.space()

    def limit() -> tuple[str, int]:
        resource = r.keyword()
        r.space()
        return resource, r.number(MAX_NUMBER64)

    return SetQuota(root, tuple(r.paren_list(limit)))


def _id(r: Reader, uid: bool) -> Id:
    # RFC 2971 section 3.3: at most 30 pairs, fields up to 30 octets, values up to 1024.
    r.space()
    if r.take_word(b"NIL"):
        return Id(None)

    def pair() -> tuple[str, str | None]:
        field = r.string()
        r.space()
        value = r.nstring()
        if len(field.encode()) > 30 or (value is not None and len(value.encode()) > 1024):
            raise BadSyntax("ID field or value too long")
        return field, value

    params = r.paren_list(pair)
    if len(params) > MAX_ID_PAIRS:
        raise BadSyntax("too many ID fields")
    return Id(tuple(params))


def _cancelupdate(r: Reader, uid: bool) -> CancelUpdate:
    # RFC 5267 section 5: "CANCELUPDATE" 1*(SP quoted).
    tags = []
    while r.take(b" "):
        tags.append(r.string())
    if not tags:
        raise BadSyntax("missing argument")
    return CancelUpdate(tuple(tags))


_Parser = Callable[[Reader, bool], object]
_COMMANDS: dict[str, _Parser] = {
    **dict.fromkeys(("CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "NAMESPACE", "IDLE",
                     "CHECK", "CLOSE", "UNSELECT"), _no_arguments),
    "AUTHENTICATE": _authenticate, "LOGIN": _login, "ENABLE": _enable,
    "SELECT": _select, "EXAMINE": _select, "CREATE": _create, "DELETE": _mailbox,
    "RENAME": _rename, "SUBSCRIBE": _mailbox, "UNSUBSCRIBE": _mailbox,
    "LIST": _list, "LSUB": _lsub, "STATUS": _status, "APPEND": _append,
    "EXPUNGE": _expunge, "SEARCH": _search, "FETCH": parse_fetch, "STORE": _store,
    "COPY": _copy, "MOVE": _copy,
    "GETQUOTA": _getquota, "GETQUOTAROOT": _mailbox, "SETQUOTA": _setquota, "ID": _id,
    "SORT": parse_sort, "THREAD": parse_thread, "COMPRESS": _compress,
    "CANCELUPDATE": _cancelupdate, "NOTIFY": parse_notify,
}
_UID_COMMANDS = {name: _COMMANDS[name]
                 for name in ("FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT",
                              "THREAD")}
