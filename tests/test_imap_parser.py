"""The IMAP grammar: command parsing, literals, sequence sets, modified UTF-7, SEARCH, FETCH."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from mailcore.imap import encode, utf7
from mailcore.imap.lexer import MAX_DEPTH, Reader, parse_sequence_set
from mailcore.imap.parser import (
    Append,
    AppendMessage,
    Authenticate,
    BadCharset,
    Command,
    CommandSyntaxError,
    Copy,
    Create,
    Enable,
    Expunge,
    Fetch,
    FetchItem,
    GetQuota,
    Id,
    List,
    LiteralMarker,
    Login,
    MailboxName,
    QResync,
    Rename,
    Search,
    Section,
    Select,
    SetQuota,
    Status,
    Store,
    Unknown,
    find_literal,
    parse_command,
)
from mailcore.imap.searchgrammar import MAX_NESTING
from mailcore.message.searchkeys import (
    AgeKey,
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NotKey,
    OrKey,
    SetKey,
    SizeKey,
    TextKey,
)
from mailcore.message.sequenceset import SequenceSet
from mailcore.sessions import BadSyntax, Refused


def args(line: bytes | str, **kwargs) -> object:
    """Return the parsed arguments of one command (CRLF appended)."""
    if isinstance(line, str):
        line = line.encode()
    return parse_command(line + b"\r\n", **kwargs).args


def seq(text: str) -> SequenceSet:
    return parse_sequence_set(text)


def bad(line: bytes | str, **kwargs) -> CommandSyntaxError:
    if isinstance(line, str):
        line = line.encode()
    with pytest.raises(CommandSyntaxError) as info:
        parse_command(line + b"\r\n", **kwargs)
    return info.value


# Literal markers: what the session decides on before reading the octets.

@pytest.mark.parametrize("line, expected", [
    (b"a LOGIN {5}\r\n", LiteralMarker(5, False, False)),
    (b"a LOGIN {5}", LiteralMarker(5, False, False)),
    (b"a LOGIN {5}\n", LiteralMarker(5, False, False)),
    (b"a LOGIN {5+}\r\n", LiteralMarker(5, True, False)),
    (b"a APPEND x ~{12}\r\n", LiteralMarker(12, False, True)),
    (b"a APPEND x ~{12+}\r\n", LiteralMarker(12, True, True)),
    (b"a APPEND x {0}\r\n", LiteralMarker(0, False, False)),
    (b"a APPEND x {99999999999}\r\n", LiteralMarker(99999999999, False, False)),
])
def test_it_finds_the_literal_announced_at_the_end_of_a_line(line, expected):
    assert find_literal(line) == expected


@pytest.mark.parametrize("line", [
    b"a NOOP\r\n", b"a LOGIN {5} x\r\n", b'a LOGIN "{5}"\r\n', b"a LOGIN {}\r\n",
    b"a LOGIN {5-}\r\n", b"a LOGIN {-5}\r\n", b"", b"{5}x",
])
def test_it_finds_no_literal_where_the_line_ends_the_command(line):
    assert find_literal(line) is None


def test_it_refuses_a_literal_size_beyond_number64():
    with pytest.raises(BadSyntax):
        find_literal(b"a APPEND x {99999999999999999999}\r\n")


# Every command.

@pytest.mark.parametrize("name", [
    "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "NAMESPACE", "IDLE", "CHECK", "CLOSE",
    "UNSELECT", "EXPUNGE",
])
def test_it_parses_commands_without_arguments(name):
    command = parse_command(f"a1 {name.lower()}\r\n".encode())
    assert command == Command("a1", name)
    bad(f"a1 {name} extra")


@pytest.mark.parametrize("line, expected", [
    ("AUTHENTICATE plain", Authenticate("PLAIN")),
    ("AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", Authenticate("PLAIN", "AGFsaWNlAHNlY3JldA==")),
    ("AUTHENTICATE PLAIN =", Authenticate("PLAIN", "=")),
    ("AUTHENTICATE XOAUTH2 dXNlcj1h+/8=", Authenticate("XOAUTH2", "dXNlcj1h+/8=")),
    ("LOGIN alice secret", Login("alice", "secret")),
    ('LOGIN "alice@example.test" "p a\\"s\\\\s"', Login("alice@example.test", 'p a"s\\s')),
    ("LOGIN {5}\r\nalice {3}\r\npw!", Login("alice", "pw!")),
    ('LOGIN alice "päss"', Login("alice", "päss")),
    ("ENABLE condstore utf8=accept", Enable(("CONDSTORE", "UTF8=ACCEPT"))),
    ("ENABLE QRESYNC", Enable(("QRESYNC",))),
    ("SELECT inbox", Select("INBOX")),
    ("EXAMINE Archive", Select("Archive")),
    ("SELECT INBOX (CONDSTORE)", Select("INBOX", condstore=True)),
    ("SELECT INBOX (QRESYNC (67890007 90060115194045000))",
     Select("INBOX", qresync=QResync(67890007, 90060115194045000))),
    ("SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))",
     Select("INBOX", qresync=QResync(67890007, 90060115194045000, seq("41:211,214:541")))),
    ("SELECT INBOX (QRESYNC (1 2 41:50 (1:3 41,43,44)))",
     Select("INBOX", qresync=QResync(1, 2, seq("41:50"), (seq("1:3"), seq("41,43,44"))))),
    ("SELECT INBOX (QRESYNC (1 2 (1:3 41,43,44)) CONDSTORE)",
     Select("INBOX", True, QResync(1, 2, None, (seq("1:3"), seq("41,43,44"))))),
    ("CREATE Projects", Create("Projects")),
    ("CREATE Sent (USE (\\sent))", Create("Sent", ("\\Sent",))),
    ("CREATE Stuff (USE (\\Archive \\Junk \\XCustom))",
     Create("Stuff", ("\\Archive", "\\Junk", "\\XCustom"))),
    ("DELETE Projects", MailboxName("Projects")),
    ("SUBSCRIBE inbox", MailboxName("INBOX")),
    ("UNSUBSCRIBE \"Old mail\"", MailboxName("Old mail")),
    ("GETQUOTAROOT INBOX", MailboxName("INBOX")),
    ("RENAME Old New", Rename("Old", "New")),
    ("STATUS INBOX (MESSAGES unseen HIGHESTMODSEQ SIZE APPENDLIMIT)",
     Status("INBOX", ("MESSAGES", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "APPENDLIMIT"))),
    ("COPY 1:3 Trash", Copy(seq("1:3"), "Trash")),
    ("MOVE 2,4 \"Junk Mail\"", Copy(seq("2,4"), "Junk Mail")),
    ("GETQUOTA \"\"", GetQuota("")),
    ("SETQUOTA \"\" (STORAGE 512 message 1000)",
     SetQuota("", (("STORAGE", 512), ("MESSAGE", 1000)))),
    ("SETQUOTA root ()", SetQuota("root", ())),
    ("ID NIL", Id(None)),
    ("ID ()", Id(())),
    ('ID ("name" "Thunderbird" "version" NIL)', Id((("name", "Thunderbird"), ("version", None)))),
])
def test_it_parses_each_command_into_typed_arguments(line, expected):
    assert args("t " + line) == expected


@pytest.mark.parametrize("line, expected", [
    ('LIST "" *', List("", ("*",))),
    ('LIST "" ""', List("", ("",))),
    ("LIST Work/ %", List("Work/", ("%",))),
    ('LIST "" INBOX]%', List("", ("INBOX]%",))),
    ('LSUB "" "Sent*"', List("", ("Sent*",))),
    ('LIST (SUBSCRIBED) "" "*"', List("", ("*",), frozenset({"SUBSCRIBED"}), extended=True)),
    ('LIST () "" %', List("", ("%",), extended=True)),
    ('LIST (subscribed recursivematch) "" %',
     List("", ("%",), frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}), extended=True)),
    ('LIST "" (INBOX Drafts "Sent Items")',
     List("", ("INBOX", "Drafts", "Sent Items"), extended=True)),
    ('LIST "" % RETURN ()', List("", ("%",), extended=True)),
    ('LIST (SPECIAL-USE) "" * RETURN (SPECIAL-USE)',
     List("", ("*",), frozenset({"SPECIAL-USE"}), frozenset({"SPECIAL-USE"}), extended=True)),
    ('LIST "" % RETURN (SUBSCRIBED CHILDREN STATUS (MESSAGES UIDNEXT))',
     List("", ("%",), return_options=frozenset({"SUBSCRIBED", "CHILDREN", "STATUS"}),
          status_items=("MESSAGES", "UIDNEXT"), extended=True)),
])
def test_it_parses_basic_and_extended_list(line, expected):
    assert args("t " + line) == expected


@pytest.mark.parametrize("line", [
    'LIST (RECURSIVEMATCH) "" %',  # RFC 5258 section 3.1: never alone
    'LIST (BOGUS) "" %',
    'LIST "" % RETURN (BOGUS)',
    'LIST "" % RETURN (STATUS ())',
    'LIST "" % RETURN (STATUS (BOGUS))',
    'LIST "" ()',
    'LIST "" % EXTRA (x)',
    'LIST ""',
    'LSUB "" (a b)',
])
def test_it_refuses_malformed_list(line):
    bad("t " + line)


def test_it_parses_append_with_flags_date_and_literal():
    message = b"From: a@example.test\r\n\r\nhello\r\n"
    data = (b'a APPEND Sent (\\Seen $Forwarded) " 7-Feb-1994 21:52:25 -0800" {%d}\r\n%s\r\n'
            % (len(message), message))
    when = datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8)))
    assert parse_command(data).args == Append(
        "Sent", (AppendMessage(message, ("\\Seen", "$Forwarded"), when),))


@pytest.mark.parametrize("data, expected", [
    (b"a APPEND INBOX {3+}\r\nabc", AppendMessage(b"abc")),
    (b"a APPEND INBOX () {3}\r\nabc", AppendMessage(b"abc")),
    (b"a APPEND INBOX ~{4}\r\na\0bc", AppendMessage(b"a\0bc", binary=True)),
    (b"a APPEND INBOX UTF8 (~{3}\r\nabc)", AppendMessage(b"abc", binary=True, utf8=True)),
    (b"a APPEND INBOX {0}\r\n", AppendMessage(b"")),
])
def test_it_parses_append_literal_kinds(data, expected):
    assert parse_command(data).args == Append("INBOX", (expected,))


def test_it_parses_multiappend():
    data = b"a APPEND INBOX {1}\r\nx (\\Draft) {2+}\r\nyz\r\n"
    assert parse_command(data).args == Append(
        "INBOX", (AppendMessage(b"x"), AppendMessage(b"yz", ("\\Draft",))))


@pytest.mark.parametrize("data", [
    b"a APPEND INBOX",
    b"a APPEND INBOX \"abc\"",  # the message must be a literal
    b"a APPEND INBOX {4}\r\na\0bc",  # NUL only in a binary literal
    b"a APPEND INBOX {10}\r\nshort",
    b"a APPEND INBOX (\\Seen) \"7-Feb-1994\" {1}\r\nx",
    b"a APPEND INBOX \"31-Feb-1994 21:52:25 -0800\" {1}\r\nx",
    b"a APPEND INBOX \" 7-Feb-1994 25:52:25 -0800\" {1}\r\nx",
    b"a APPEND INBOX \" 7-Feb-1994 21:52:25 +9900\" {1}\r\nx",
    b"a APPEND INBOX {1}\r\nxy",
    b"a APPEND INBOX CATENATE (URL)",  # CATENATE (RFC 4469) is read, but needs its URL
])
def test_it_refuses_malformed_append(data):
    with pytest.raises(CommandSyntaxError):
        parse_command(data)


@pytest.mark.parametrize("line, expected", [
    ("STORE 1 FLAGS (\\Seen)", Store(seq("1"), "replace", ("\\Seen",))),
    ("STORE 1 FLAGS ()", Store(seq("1"), "replace", ())),
    ("STORE 1:* +FLAGS.SILENT (\\deleted)", Store(seq("1:*"), "add", ("\\Deleted",), True)),
    ("STORE 2 -flags \\Flagged $Junk", Store(seq("2"), "remove", ("\\Flagged", "$Junk"))),
    ("STORE 3 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)",
     Store(seq("3"), "add", ("\\Deleted",), True, 320162338)),
    ("STORE $ +FLAGS (\\Answered)", Store(SequenceSet(saved=True), "add", ("\\Answered",))),
])
def test_it_parses_store(line, expected):
    assert args("t " + line) == expected


@pytest.mark.parametrize("line", [
    "STORE 1 FLAG (\\Seen)", "STORE 1 *FLAGS (\\Seen)", "STORE 1 +FLAGS", "STORE 1 FLAGS (\\)",
    "STORE 1 (UNCHANGEDSINCE) FLAGS ()", "STORE 1 (FOO 1) FLAGS ()", "STORE 1 FLAGS (\\Seen",
    "STORE 1 FLAGS ((\\Seen))", "STORE 1 FLAGS.LOUD ()",
])
def test_it_refuses_malformed_store(line):
    bad("t " + line)


@pytest.mark.parametrize("line, name, expected", [
    ("UID FETCH 1:* FLAGS", "FETCH", Fetch(seq("1:*"), (FetchItem("FLAGS"),))),
    ("uid store 5 +FLAGS (\\Seen)", "STORE", Store(seq("5"), "add", ("\\Seen",))),
    ("UID COPY 1:3 Trash", "COPY", Copy(seq("1:3"), "Trash")),
    ("UID MOVE 7 Archive", "MOVE", Copy(seq("7"), "Archive")),
    ("UID EXPUNGE 3000:3002", "EXPUNGE", Expunge(seq("3000:3002"))),
    ("UID SEARCH ALL", "SEARCH", Search(AllKey())),
])
def test_it_parses_uid_commands_with_a_uid_flag(line, name, expected):
    command = parse_command(f"u1 {line}\r\n".encode())
    assert (command.name, command.uid, command.verb, command.args) == (
        name, True, f"UID {name}", expected)


def test_plain_expunge_has_no_arguments():
    assert args("a EXPUNGE") is None
    bad("a UID EXPUNGE")


@pytest.mark.parametrize("line, verb, raw", [
    ("a1 XYZZY", "XYZZY", b""),
    ("a1 xyzzy some {args} (here", "XYZZY", b"some {args} (here"),
    ("a1 UID FROB 1:2", "UID FROB", b"1:2"),
    ("a1 UID LOGIN alice", "UID LOGIN", b"alice"),
    ("a1 XCOMPRESS DEFLATE", "XCOMPRESS", b"DEFLATE"),
])
def test_it_passes_unknown_commands_to_the_session(line, verb, raw):
    command = parse_command(line.encode() + b"\r\n")
    assert (command.tag, command.verb, command.args) == ("a1", verb, Unknown(raw))


@pytest.mark.parametrize("data, tag, verb", [
    (b"", None, None),
    (b"\r\n", None, None),
    (b" NOOP\r\n", None, None),
    (b"+ NOOP\r\n", None, None),
    (b"* NOOP\r\n", None, None),
    (b"a+b NOOP\r\n", None, None),
    (b"a\x00 NOOP\r\n", None, None),
    (b"\xe9t\xe9 NOOP\r\n", None, None),
    (b"abc\r\n", "abc", None),
    (b"abc \r\n", "abc", None),
    (b"abc  NOOP\r\n", "abc", None),
    (b"abc (NOOP)\r\n", "abc", None),
    (b"abc UID\r\n", "abc", "UID"),
    (b"abc LOGIN alice\r\n", "abc", "LOGIN"),
    (b"abc LOGIN alice  pw\r\n", "abc", "LOGIN"),
    (b"abc LOGIN alice pw \r\n", "abc", "LOGIN"),
    (b"abc UID FETCH 0 FLAGS\r\n", "abc", "UID FETCH"),
])
def test_syntax_errors_carry_the_tag_and_verb_when_read(data, tag, verb):
    with pytest.raises(CommandSyntaxError) as info:
        parse_command(data)
    assert (info.value.tag, info.value.verb) == (tag, verb)
    assert isinstance(info.value, BadSyntax)


def test_tags_may_hold_brackets_and_punctuation():
    assert parse_command(b"A]1.x-y NOOP\r\n").tag == "A]1.x-y"


def test_the_trailing_crlf_is_optional():
    assert parse_command(b"a NOOP") == parse_command(b"a NOOP\r\n") == Command("a", "NOOP")


# Strings, literals, lists.

@pytest.mark.parametrize("data, expected", [
    (b'a LOGIN "" ""', Login("", "")),
    (b'a LOGIN "a b" "\\\\\\""', Login("a b", '\\"')),
    (b"a LOGIN {0}\r\n {0}\r\n", Login("", "")),
    (b"a LOGIN {11}\r\nline\r\nbreak {1+}\r\n\"", Login("line\r\nbreak", '"')),
    (b"a LOGIN alice]x pw", Login("alice]x", "pw")),
    (b"a LOGIN nil NIL", Login("nil", "NIL")),
])
def test_it_reads_atoms_quoted_strings_and_literals(data, expected):
    assert parse_command(data).args == expected


@pytest.mark.parametrize("data, message", [
    (b'a LOGIN "alice pw', "quoted"),
    (b'a LOGIN "ali\\ce" pw', "quoted"),
    (b'a LOGIN "ali\rce" pw', "quoted"),
    (b'a LOGIN "ali\nce" pw', "quoted"),
    (b'a LOGIN "ali\x00ce" pw', "quoted"),
    (b"a LOGIN ali\x00ce pw", ""),
    (b"a LOGIN al\xe9 pw", ""),
    (b"a LOGIN al(ce pw", ""),
    (b"a LOGIN al%ce pw", ""),
    (b"a LOGIN al*ce pw", ""),
    (b"a LOGIN {5}\r\nali", "literal"),
    (b"a LOGIN {5} alice pw", "literal"),
    (b"a LOGIN {3}\r\na\x00c pw", "NUL"),
    (b"a LOGIN ~{3}\r\nabc pw", "binary"),
    (b"a LOGIN {99999999999999999999}\r\n", "too large"),
    (b'a LOGIN alice "\xff\xfe"', "UTF-8"),
])
def test_it_refuses_malformed_strings(data, message):
    with pytest.raises(CommandSyntaxError) as info:
        parse_command(data)
    assert message in info.value.text


def test_error_messages_never_echo_the_input():
    huge = b"x" * 100_000
    for data in (b"a LOGIN " + huge + b"\x00", b'a LOGIN "' + huge, b"a FETCH " + huge,
                 b"a SEARCH " + huge, b"a " + huge + b" x" * 5):
        try:
            parse_command(data)
        except BadSyntax as e:
            assert len(e.text) < 100
        else:
            assert data.startswith(b"a x")  # the unknown-command path


def test_it_accepts_lists_nested_up_to_the_depth_limit():
    r = Reader(b"(" * MAX_DEPTH + b")" * MAX_DEPTH)

    def item() -> object:
        return r.paren_list(item) if r.peek(b"(") else r.atom()

    expected: list = []
    for _ in range(MAX_DEPTH - 1):
        expected = [expected]
    assert item() == expected
    r = Reader(b"(" * (MAX_DEPTH + 1) + b")" * (MAX_DEPTH + 1))
    with pytest.raises(BadSyntax, match="nested"):
        item()


def test_search_groups_deeper_than_the_limit_are_bad_syntax():
    # Groups count with NOT and OR towards the search grammar's own limit, not MAX_DEPTH.
    ok = "(" * MAX_NESTING + "SEEN" + ")" * MAX_NESTING
    assert args("a SEARCH " + ok).key == FlagKey("\\Seen")
    bad("a SEARCH " + "(" * (MAX_NESTING + 1) + "SEEN" + ")" * (MAX_NESTING + 1))
    bad("a SEARCH " + "NOT (" * 51 + "SEEN" + ")" * 51)


def test_search_not_chains_are_bounded_without_recursion_errors():
    assert args("a SEARCH " + "NOT " * 50 + "SEEN").key is not None
    bad("a SEARCH " + "NOT " * 5000 + "SEEN")
    bad("a SEARCH " + "OR " * 5000 + "SEEN SEEN" * 5001)


# Numbers and sequence sets.

@pytest.mark.parametrize("text, ranges", [
    ("1", ((1, 1),)),
    ("*", ((None, None),)),
    ("1:*", ((1, None),)),
    ("*:4", ((None, 4),)),
    ("5:3", ((5, 3),)),
    ("2,4:7,9,12:*", ((2, 2), (4, 7), (9, 9), (12, None))),
    ("4294967295", ((4294967295, 4294967295),)),
])
def test_it_parses_sequence_sets(text, ranges):
    assert seq(text) == SequenceSet(ranges)
    assert str(seq(text)) == text


def test_dollar_is_the_saved_search_result():
    assert seq("$") == SequenceSet(saved=True)
    assert str(seq("$")) == "$"


@pytest.mark.parametrize("text", [
    "0", "0:5", "5:0", "1:", ":1", "*:*:*", "1:2:3", "1,,2", ",1", "1,", "01", "4294967296",
    "99999999999999999999999999", "1,$", "$:1", "$$", "", "a", "1.5",
])
def test_it_refuses_bad_sequence_sets(text):
    with pytest.raises(BadSyntax):
        seq(text)
    bad(f"a FETCH {text} FLAGS")


@pytest.mark.parametrize("text, largest, ranges", [
    ("1:*", 0, [(0, 1)]),
    ("1:*", 5, [(1, 5)]),
    ("5:3,1,2", 9, [(1, 5)]),
    ("*", 7, [(7, 7)]),
    ("559:*", 500, [(500, 559)]),
    ("1:3,7:9,4", 10, [(1, 4), (7, 9)]),
    ("10:12,1:20", 30, [(1, 20)]),
])
def test_it_resolves_sets_into_merged_ranges(text, largest, ranges):
    assert seq(text).resolve(largest) == ranges


def test_expanding_one_to_star_on_a_huge_mailbox_stays_lazy():
    numbers = seq("1:*").iter_numbers(2**32 - 1)
    assert list(itertools.islice(numbers, 3)) == [1, 2, 3]
    assert seq("3:*").contains(4_000_000_000, 2**32 - 1)
    assert not seq("3:5").contains(6, 2**32 - 1)
    assert seq("*").contains(9, 9)


def test_iteration_stops_at_the_largest_number():
    assert list(seq("2,4:*,100").iter_numbers(6)) == [2, 4, 5, 6]
    assert list(seq("1:*").iter_numbers(0)) == []


def test_it_selects_members_of_a_sorted_uid_list():
    uids = [3, 7, 8, 20, 21, 4_000_000_000]
    assert seq("1:*").select(uids) == uids
    assert seq("*").select(uids) == [4_000_000_000]
    assert seq("5:20,21").select(uids) == [7, 8, 20, 21]
    assert seq("9:19").select(uids) == []
    assert seq("4000000001:*").select(uids) == [4_000_000_000]
    assert seq("1:*").select([]) == []


def test_it_tells_when_a_sequence_number_exceeds_the_mailbox():
    assert seq("1:7").exceeds(5)
    assert not seq("1:*").exceeds(5)


def test_it_compresses_numbers_into_a_set():
    assert str(SequenceSet.from_numbers([9, 1, 2, 3, 5, 6, 3])) == "1:3,5:6,9"
    assert encode.sequence_set([304, 319, 320]) == b"304,319:320"


def test_the_saved_result_cannot_be_resolved_directly():
    with pytest.raises(ValueError):
        seq("$").resolve(5)


@pytest.mark.parametrize("line", [
    "a FETCH 1 BODY[]<0.0>", "a FETCH 1 BODY[]<99999999999999999999.1>",
    "a SEARCH LARGER 99999999999999999999", "a SEARCH LARGER -1", "a SEARCH YOUNGER 0",
    "a STATUS INBOX (MESSAGES 1)", "a SELECT INBOX (QRESYNC (0 1))",
    "a FETCH 1 BODY[0]", "a FETCH 1 BODY[01]",
])
def test_it_refuses_bad_numbers(line):
    bad(line)


# Modified UTF-7 mailbox names.

@pytest.mark.parametrize("name, encoded", [
    ("INBOX", "INBOX"),
    ("", ""),
    ("&", "&-"),
    ("a&b", "a&-b"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("été", "&AOk-t&AOk-"),
    ("😀 smile", "&2D3eAA- smile"),
    ("a\U0001f600\u00e9b", "a&2D3eAADp-b"),
    ("Tab\there", "Tab&AAk-here"),
])
def test_modified_utf7_round_trips(name, encoded):
    assert utf7.encode(name) == encoded
    assert utf7.decode(encoded) == name
    assert utf7.decode(encoded.encode()) == name


@pytest.mark.parametrize("encoded", [
    "&", "a&b", "&AOk", "&AOk-&AOk-", "&AGE-", "&Jjo!-", "&AOk=-", "&2D0-", "&3gA-",
    "&2D3YPQ-", "&AO-", "caf\u00e9", "a\tb", "&U,BTFw-&ZeVnLIqe-", "&AOl-",
])
def test_modified_utf7_refuses_invalid_or_non_canonical_names(encoded):
    with pytest.raises(utf7.InvalidName):
        utf7.decode(encoded)


@pytest.mark.parametrize("name, delimiter, expected", [
    ("inbox", None, "INBOX"),
    ("InBox", "/", "INBOX"),
    ("inbox/Sub", "/", "INBOX/Sub"),
    ("inbox/Sub", None, "inbox/Sub"),
    ("inbox.Sub", ".", "INBOX.Sub"),
    ("Inboxes", "/", "Inboxes"),
])
def test_inbox_is_case_insensitive(name, delimiter, expected):
    assert utf7.normalize(name, delimiter) == expected
    assert utf7.is_inbox(name) == (expected == "INBOX")


def test_mailbox_names_are_decoded_from_modified_utf7():
    assert args("a SELECT Entw&APw-rfe") == Select("Entwürfe")
    assert args('a LIST "" &AOk-*') == List("", ("é*",))
    assert args("a CREATE a&-b") == Create("a&b")
    # Valid astrings that are not valid names are no syntax error: they name nothing.
    assert args("a SELECT Entw&APw") == Select(utf7.unnameable("Entw&APw"))
    assert args('a SELECT "Entwürfe"') == Select(utf7.unnameable("Entwürfe"))
    assert args("a SELECT {3}\r\na\x01b") == Select(utf7.unnameable("a\x01b"))


def test_with_utf8_enabled_mailbox_names_arrive_as_utf8():
    assert args('a SELECT "Entwürfe"', utf8=True) == Select("Entwürfe")
    assert args("a SELECT a&b", utf8=True) == Select("a&b")
    assert args('a LIST "" "é*"', utf8=True) == List("", ("é*",))
    bad(b'a SELECT "\xff"', utf8=True)


# SEARCH.

@pytest.mark.parametrize("program, key", [
    ("ALL", AllKey()),
    ("answered", FlagKey("\\Answered")),
    ("UNSEEN", FlagKey("\\Seen", False)),
    ("DELETED", FlagKey("\\Deleted")), ("UNDELETED", FlagKey("\\Deleted", False)),
    ("DRAFT", FlagKey("\\Draft")), ("UNDRAFT", FlagKey("\\Draft", False)),
    ("FLAGGED", FlagKey("\\Flagged")), ("UNFLAGGED", FlagKey("\\Flagged", False)),
    ("UNANSWERED", FlagKey("\\Answered", False)), ("SEEN", FlagKey("\\Seen")),
    ("RECENT", FlagKey("\\Recent")), ("OLD", FlagKey("\\Recent", False)),
    ("NEW", AndKey((FlagKey("\\Recent"), FlagKey("\\Seen", False)))),
    ("KEYWORD $Forwarded", FlagKey("$Forwarded")),
    ("UNKEYWORD $Junk", FlagKey("$Junk", False)),
    ("FROM alice", HeaderKey("from", "alice")),
    ("TO \"bob smith\"", HeaderKey("to", "bob smith")),
    ("CC x", HeaderKey("cc", "x")), ("BCC x", HeaderKey("bcc", "x")),
    ("SUBJECT {5}\r\nhello", HeaderKey("subject", "hello")),
    ("HEADER Message-ID <a@b>", HeaderKey("message-id", "<a@b>")),
    ("HEADER X-Spam \"\"", HeaderKey("x-spam", "")),
    ("BODY lunch", TextKey("BODY", "lunch")), ("TEXT lunch", TextKey("TEXT", "lunch")),
    ("BEFORE 1-Feb-1994", DateKey("INTERNAL", "BEFORE", date(1994, 2, 1))),
    ("ON \"03-mar-2024\"", DateKey("INTERNAL", "ON", date(2024, 3, 3))),
    ("SINCE 29-Feb-2024", DateKey("INTERNAL", "SINCE", date(2024, 2, 29))),
    ("SENTBEFORE 1-Jan-2000", DateKey("SENT", "BEFORE", date(2000, 1, 1))),
    ("SENTON 1-Jan-2000", DateKey("SENT", "ON", date(2000, 1, 1))),
    ("SENTSINCE 1-Jan-2000", DateKey("SENT", "SINCE", date(2000, 1, 1))),
    ("LARGER 1024", SizeKey("LARGER", 1024)), ("SMALLER 0", SizeKey("SMALLER", 0)),
    ("YOUNGER 3600", AgeKey("YOUNGER", 3600)), ("OLDER 60", AgeKey("OLDER", 60)),
    ("UID 1:*", SetKey(seq("1:*"), uid=True)),
    ("UID $", SetKey(SequenceSet(saved=True), uid=True)),
    ("2:4,*", SetKey(seq("2:4,*"))),
    ("$", SetKey(SequenceSet(saved=True))),
    ("MODSEQ 620162338", ModSeqKey(620162338)),
    ('MODSEQ "/flags/\\\\draft" all 620162338', ModSeqKey(620162338, "/flags/\\draft", "ALL")),
    ("NOT SEEN", NotKey(FlagKey("\\Seen"))),
    ("OR SEEN FLAGGED", OrKey(FlagKey("\\Seen"), FlagKey("\\Flagged"))),
    ("NOT OR SEEN FLAGGED", NotKey(OrKey(FlagKey("\\Seen"), FlagKey("\\Flagged")))),
    ("OR NOT SEEN FLAGGED", OrKey(NotKey(FlagKey("\\Seen")), FlagKey("\\Flagged"))),
    ("OR OR FROM a FROM b FROM c",
     OrKey(OrKey(HeaderKey("from", "a"), HeaderKey("from", "b")), HeaderKey("from", "c"))),
    ("OR FROM a OR FROM b FROM c",
     OrKey(HeaderKey("from", "a"), OrKey(HeaderKey("from", "b"), HeaderKey("from", "c")))),
    ("(SEEN)", FlagKey("\\Seen")),
    ("(SEEN FLAGGED) DRAFT",
     AndKey((AndKey((FlagKey("\\Seen"), FlagKey("\\Flagged"))), FlagKey("\\Draft")))),
    ("OR (FROM a TO b) NOT (SEEN 1:5)",
     OrKey(AndKey((HeaderKey("from", "a"), HeaderKey("to", "b"))),
           NotKey(AndKey((FlagKey("\\Seen"), SetKey(seq("1:5"))))))),
    ("UNSEEN SINCE 1-Jan-2024 NOT FROM spam",
     AndKey((FlagKey("\\Seen", False), DateKey("INTERNAL", "SINCE", date(2024, 1, 1)),
             NotKey(HeaderKey("from", "spam"))))),
])
def test_it_builds_search_key_trees(program, key):
    search = args("a SEARCH " + program)
    assert search == Search(key)


def test_search_charset_and_return_options():
    assert args("a SEARCH CHARSET utf-8 SUBJECT x") == Search(
        HeaderKey("subject", "x"), "UTF-8")
    assert args("a SEARCH RETURN (MIN MAX count ALL SAVE) UNSEEN").return_options == frozenset(
        {"MIN", "MAX", "COUNT", "ALL", "SAVE"})
    assert args("a SEARCH RETURN () UNSEEN").return_options == frozenset({"ALL"})
    assert args("a SEARCH UNSEEN").return_options is None
    assert args("a SEARCH RETURN (COUNT) CHARSET US-ASCII ALL") == Search(
        AllKey(), "US-ASCII", frozenset({"COUNT"}))


def test_search_strings_are_decoded_in_their_charset():
    data = b"a SEARCH CHARSET ISO-8859-1 SUBJECT {4}\r\ncaf\xe9\r\n"
    assert parse_command(data).args.key == HeaderKey("subject", "café")
    assert args("a SEARCH SUBJECT \"café\"").key == HeaderKey("subject", "café")
    bad(b"a SEARCH CHARSET US-ASCII SUBJECT {4}\r\ncaf\xe9")
    bad(b"a SEARCH SUBJECT {4}\r\ncaf\xe9")


@pytest.mark.parametrize("charset", ["X-NO-SUCH", "base64", "rot13"])
def test_search_with_an_unknown_charset_is_refused_with_badcharset(charset):
    with pytest.raises(BadCharset) as info:
        parse_command(f"t9 UID SEARCH CHARSET {charset} ALL\r\n".encode())
    assert isinstance(info.value, Refused)
    assert info.value.text.startswith("[BADCHARSET")
    assert (info.value.tag, info.value.verb) == ("t9", "UID SEARCH")


def test_search_knows_when_modseq_is_involved():
    assert args("a SEARCH OR SEEN NOT (MODSEQ 5)").uses_modseq
    assert not args("a SEARCH OR SEEN NOT (FLAGGED)").uses_modseq


@pytest.mark.parametrize("program", [
    "", "BOGUS", "FROM", "OR SEEN", "NOT", "()", "(SEEN", "SEEN)", "BEFORE 1-Foo-2000",
    "BEFORE 32-Jan-2000", "BEFORE 2000-01-01", "BEFORE \"1-Jan-2000", "LARGER x", "UID",
    "UID 0", "KEYWORD \\Seen", "MODSEQ \"/foo/x\" all 5", "MODSEQ \"/flags/x\" mine 5",
    "MODSEQ x", "RETURN (FOO) ALL", "RETURN ALL", "CHARSET", "SEEN  FLAGGED", "SEEN ",
    "HEADER Subject", "ALL CHARSET UTF-8", "1:", "*:*:*",
])
def test_it_refuses_malformed_search_programs(program):
    bad("a SEARCH " + program)


# FETCH.

@pytest.mark.parametrize("items, expected", [
    ("ALL", ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")),
    ("fast", ("FLAGS", "INTERNALDATE", "RFC822.SIZE")),
    ("FULL", ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")),
    ("(FLAGS UID)", ("FLAGS", "UID")),
    ("(rfc822.header RFC822.TEXT RFC822 RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY MODSEQ)",
     ("RFC822.HEADER", "RFC822.TEXT", "RFC822", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE",
      "BODY", "MODSEQ")),
    ("INTERNALDATE", ("INTERNALDATE",)),
])
def test_it_parses_simple_fetch_items_and_macros(items, expected):
    fetch = args("a FETCH 1:* " + items)
    assert fetch == Fetch(seq("1:*"), tuple(FetchItem(name) for name in expected))


@pytest.mark.parametrize("item, expected, label", [
    ("BODY[]", FetchItem("BODY", Section()), "BODY[]"),
    ("body.peek[]", FetchItem("BODY", Section(), peek=True), "BODY[]"),
    ("BODY[TEXT]", FetchItem("BODY", Section(text="TEXT")), "BODY[TEXT]"),
    ("BODY[HEADER]<0.512>", FetchItem("BODY", Section(text="HEADER"), (0, 512)),
     "BODY[HEADER]<0>"),
    ("BODY[]<100.50>", FetchItem("BODY", Section(), (100, 50)), "BODY[]<100>"),
    ("BODY[1]", FetchItem("BODY", Section((1,))), "BODY[1]"),
    ("BODY.PEEK[1.2.3]", FetchItem("BODY", Section((1, 2, 3)), peek=True), "BODY[1.2.3]"),
    ("BODY[1.MIME]", FetchItem("BODY", Section((1,), "MIME")), "BODY[1.MIME]"),
    ("BODY[2.header]", FetchItem("BODY", Section((2,), "HEADER")), "BODY[2.HEADER]"),
    ("BODY[3.1.TEXT]", FetchItem("BODY", Section((3, 1), "TEXT")), "BODY[3.1.TEXT]"),
    ("BODY.PEEK[HEADER.FIELDS (From To Message-ID)]",
     FetchItem("BODY", Section((), "HEADER.FIELDS", ("From", "To", "Message-ID")), peek=True),
     "BODY[HEADER.FIELDS (From To Message-ID)]"),
    ("BODY[1.HEADER.FIELDS.NOT (\"X-Spam\" {4}\r\nDate)]",
     FetchItem("BODY", Section((1,), "HEADER.FIELDS.NOT", ("X-Spam", "Date"))),
     "BODY[1.HEADER.FIELDS.NOT (X-Spam Date)]"),
    ("BINARY[]", FetchItem("BINARY", Section()), "BINARY[]"),
    ("BINARY.PEEK[1.2]<0.10>", FetchItem("BINARY", Section((1, 2)), (0, 10), True),
     "BINARY[1.2]<0>"),
    ("binary.size[1]", FetchItem("BINARY.SIZE", Section((1,))), "BINARY.SIZE[1]"),
    ("FLAGS", FetchItem("FLAGS"), "FLAGS"),
    ("BODY", FetchItem("BODY"), "BODY"),
])
def test_it_parses_body_sections_partials_and_response_labels(item, expected, label):
    fetch = parse_command(f"a FETCH 5 ({item} UID)\r\n".encode()).args
    assert fetch.items == (expected, FetchItem("UID"))
    assert expected.label() == label


def test_fetch_modifiers():
    assert args("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)") == Fetch(
        seq("1:*"), (FetchItem("FLAGS"),), 12345, True)
    assert args("a FETCH 1 FAST (changedsince 7)").changed_since == 7
    bad("a FETCH 1 FLAGS (CHANGEDSINCE)")
    bad("a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)")
    bad("a FETCH 1 FLAGS (BOGUS)")
    bad("a FETCH 1 FLAGS ()")


@pytest.mark.parametrize("items", [
    "()", "(ALL)", "(FLAGS FAST)", "BOGUS", "(FLAGS BOGUS)", "BODY[", "BODY[]<0>",
    "BODY[]<0.>", "BODY[]<.1>", "BODY[MIME]", "BODY[HEADER.FIELDS]", "BODY[HEADER.FIELDS ()]",
    "BODY[HEADER.FIELDS (Sub:ject)]", "BODY[1.]", "BODY[1..2]", "BODY[.1]", "BODY[1.FOO]",
    "BODY[TEXT.1]", "BODY.PEEK", "BINARY", "BINARY[TEXT]", "BINARY[1.MIME]", "BINARY.SIZE",
    "BINARY.SIZE[1]<0.5>", "BINARY.SIZE.PEEK[1]", "RFC822.PEEK", "(FLAGS", "FLAGS)",
    "(FLAGS  UID)", "ALL[]", "BODY[]  ", "UID[1]",
])
def test_it_refuses_malformed_fetch_items(items):
    bad("a FETCH 1 " + items)


# Dates.

def test_it_reads_dates_and_date_times():
    assert Reader(b"1-Feb-1994").date() == date(1994, 2, 1)
    assert Reader(b'"21-dec-2020"').date() == date(2020, 12, 21)
    moment = Reader(b'"01-Jan-2024 00:00:00 +0530"').date_time()
    assert moment == datetime(2023, 12, 31, 18, 30, tzinfo=UTC)
    assert Reader(b'"1-Jan-2024 23:59:60 -0000"').date_time().second == 59


@pytest.mark.parametrize("text", [
    b'"01-Jan-2024 00:00 +0000"', b'"01-Jan-2024 00:00:00"', b"01-Jan-2024 00:00:00 +0000",
    b'"01-Jan-2024 00:00:00 0000"', b'"01-Jan-24 00:00:00 +0000"', b'"001-Jan-2024 00:00:00 +0000"',
    b'"01-Jan-2024 00:60:00 +0000"', b'"01-Jan-2024 00:00:00 +0060"',
])
def test_it_refuses_bad_date_times(text):
    with pytest.raises(BadSyntax):
        Reader(text).date_time()


# The response side.

@pytest.mark.parametrize("value, expected", [
    ("INBOX", b"INBOX"),
    ("a]b", b"a]b"),
    ("", b'""'),
    ("NIL", b'"NIL"'),
    ("two words", b'"two words"'),
    ('say "hi"\\', b'"say \\"hi\\"\\\\"'),
    ("a(b", b'"a(b"'),
    ("50%", b'"50%"'),
    ("line\r\nbreak", b"{11}\r\nline\r\nbreak"),
    ("caf\xe9", b"{5}\r\ncaf\xc3\xa9"),
    (b"\x00", b"{1}\r\n\x00"),
])
def test_astrings_go_out_as_atom_quoted_or_literal(value, expected):
    assert encode.astring(value) == expected


def test_long_and_8bit_strings_become_literals_unless_utf8_is_enabled():
    assert encode.string("x" * 2000).startswith(b"{2000}\r\n")
    assert encode.string("café", utf8=True) == '"café"'.encode()
    assert encode.string(b"caf\xe9", utf8=True) == b"{4}\r\ncaf\xe9"
    assert encode.nstring(None) == b"NIL"
    assert encode.nstring("") == b'""'
    assert encode.literal(b"a\0b", binary=True) == b"~{3}\r\na\0b"


def test_mailbox_names_go_out_in_modified_utf7_or_utf8():
    assert encode.mailbox("Entwürfe") == b"Entw&APw-rfe"
    assert encode.mailbox("Entwürfe", utf8=True) == '"Entwürfe"'.encode()
    assert encode.mailbox("inbox") == b"INBOX"
    assert encode.mailbox("Sent Items") == b'"Sent Items"'
    assert encode.mailbox("a&b") == b"a&-b"


def test_flags_lists_and_date_times():
    assert encode.flags(["\\Seen", "$Forwarded"]) == b"(\\Seen $Forwarded)"
    assert encode.flags([]) == b"()"
    assert encode.paren_list([b"a", 1, "b"]) == b"(a 1 b)"
    when = datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8)))
    assert encode.date_time(when) == b'"07-Feb-1994 21:52:25 -0800"'
    assert encode.date_time(datetime(2024, 1, 1, 0, 0)) == b'"01-Jan-2024 00:00:00 +0000"'
    india = datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert encode.date_time(india) == b'"01-Jan-2024 00:00:00 +0530"'


def test_dates_round_trip_between_encoder_and_parser():
    when = datetime(2031, 12, 9, 8, 7, 6, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    assert Reader(encode.date_time(when)).date_time() == when


def test_response_lines():
    assert encode.untagged(3, "EXISTS") == b"* 3 EXISTS\r\n"
    assert encode.untagged("FLAGS", encode.flags(["\\Seen"])) == b"* FLAGS (\\Seen)\r\n"
    assert encode.tagged("a1", "OK", "LOGIN completed") == b"a1 OK LOGIN completed\r\n"
    code = encode.response_code("APPENDUID", 38505, 3955)
    assert encode.tagged("a2", "OK", "done", code) == b"a2 OK [APPENDUID 38505 3955] done\r\n"
    assert encode.tagged("a3", "NO", "") == b"a3 NO Done\r\n"
    assert encode.untagged_status("OK", "evil\r\n* BYE injected") == (
        b"* OK evil * BYE injected\r\n")
    permanent = encode.response_code("PERMANENTFLAGS", encode.flags(["\\Seen", "\\*"]))
    assert permanent == b"[PERMANENTFLAGS (\\Seen \\*)]"
    assert encode.continuation() == b"+ Ready\r\n"
    assert encode.fetch_response(12, [("UID", b"5"), ("FLAGS", encode.flags(["\\Seen"]))]) == (
        b"* 12 FETCH (UID 5 FLAGS (\\Seen))\r\n")


def test_quoted_strings_written_by_the_encoder_parse_back():
    for value in ["", "plain", 'qu"ote', "back\\slash", "x" * 999, "sp ace"]:
        data = b"a LOGIN " + encode.astring(value) + b" " + encode.string(value) + b"\r\n"
        assert parse_command(data).args == Login(value, value)
