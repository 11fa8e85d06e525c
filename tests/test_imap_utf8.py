"""UTF8=ACCEPT (RFC 6855): UTF-8 mailbox names, strings and messages once a client enables it."""

from __future__ import annotations

from mailcore.models import Folder
from tests.imap_client import connect, selected

NAME = "Résumé/日本"
MUTF7 = "R&AOk-sum&AOk-/&ZeVnLA-"
UTF8_MESSAGE = ("From: Zoë <zoe@bücher.example>\r\nTo: alice@example.test\r\n"
                "Subject: Grüße aus Köln\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
                "\r\nHallo\r\n").encode()


def utf8_client(server):
    client = connect(server, login=True)
    assert client.run("ENABLE UTF8=ACCEPT") == (["* ENABLED UTF8=ACCEPT"],
                                                "OK ENABLE completed")
    return client


def test_it_is_advertised_and_enabled_once(server, alice):
    client = connect(server, login=True)
    assert "UTF8=ACCEPT" in client.run("CAPABILITY")[0][0].split()
    assert client.run("ENABLE UTF8=ACCEPT")[0] == ["* ENABLED UTF8=ACCEPT"]
    assert client.run("ENABLE UTF8=ACCEPT")[0] == ["* ENABLED"]  # already on


def test_mailbox_names_are_utf8_once_enabled_and_mutf7_otherwise(server, alice):
    client = utf8_client(server)
    assert client.run(f'CREATE "{NAME}"'.encode()) == ([], "OK CREATE completed")
    assert Folder.objects.filter(mailbox=alice, name=NAME).exists()
    assert client.run(b'LIST "" "R\xc3\xa9sum\xc3\xa9/*"') == (
        [f'* LIST (\\HasNoChildren) "/" "{NAME}"'], "OK LIST completed")
    untagged, done = client.run(f'SELECT "{NAME}"'.encode())
    assert done == "OK [READ-WRITE] SELECT completed"
    legacy = connect(server, login=True)
    assert legacy.run('LIST "" "R&AOk-sum&AOk-/*"') == (
        [f'* LIST (\\HasNoChildren) "/" {MUTF7}'], "OK LIST completed")
    assert legacy.run(f'STATUS {MUTF7} (MESSAGES)')[0] == [f"* STATUS {MUTF7} (MESSAGES 0)"]


def test_append_utf8_stores_the_message_and_fetch_returns_utf8(server, alice):
    client = utf8_client(server)
    untagged, done = client.run(b"APPEND INBOX UTF8 (~{%d+}\r\n" % len(UTF8_MESSAGE)
                                + UTF8_MESSAGE + b")")
    assert done.startswith("OK [APPENDUID "), done
    client.ok("SELECT INBOX")
    untagged, _ = client.run("FETCH 1 (ENVELOPE)")
    # UTF-8 as it was sent (in literals, which RFC 6855 leaves the server free to use).
    assert "{17}\r\nGrüße aus Köln" in untagged[0]
    assert "{4}\r\nZoë NIL \"zoe\" {15}\r\nbücher.example" in untagged[0]
    assert client.run('SEARCH SUBJECT "grüße"') == (["* SEARCH 1"], "OK SEARCH completed")


def test_charsets_other_than_utf8_are_refused_once_enabled(server, alice):
    client = utf8_client(server)
    client.ok("SELECT INBOX")
    # RFC 6855 section 3, erratum 4029: no CHARSET in SEARCH; SORT and THREAD say UTF-8.
    assert client.run("SEARCH CHARSET UTF-8 ALL")[1].startswith("BAD ")
    assert client.run("SORT (SUBJECT) US-ASCII ALL")[1].startswith("BAD ")
    assert client.run("THREAD REFERENCES ISO-8859-1 ALL")[1].startswith("BAD ")
    assert client.run("SORT (SUBJECT) UTF-8 ALL") == (["* SORT"], "OK SORT completed")
    other = selected(server)
    assert other.run("SEARCH CHARSET UTF-8 ALL") == (["* SEARCH"], "OK SEARCH completed")
