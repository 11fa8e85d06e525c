"""Spam filtering's pieces without a server: list matching, Rspamd's reply, the verdicts."""

from __future__ import annotations

import pytest

from mailcore.inbound import rspamd
from mailcore.inbound.spam import Policy, matches, request_headers, senders, verdict_for
from mailcore.inbound.verdict import Action, Incoming


def test_a_list_entry_names_an_address_or_a_domain_and_its_subdomains():
    assert matches("bob@remote.test", "bob@remote.test")
    assert not matches("bob@remote.test", "rob@remote.test")
    assert matches("remote.test", "bob@remote.test")
    assert matches("remote.test", "bob@mail.remote.test")
    assert not matches("remote.test", "bob@notremote.test")


def test_senders_are_the_envelope_sender_and_the_from_addresses():
    incoming = Incoming(b"From: \"Bob\" <Bob@Remote.test>,\r\n x@y.test\r\nSubject: s\r\n\r\n",
                        "192.0.2.1", "h", "bounce@lists.test", ("a@example.test",),
                        frozenset())
    assert senders(incoming) == ["bounce@lists.test", "bob@remote.test", "x@y.test"]


def test_the_request_carries_the_envelope_client_and_thresholds():
    incoming = Incoming(b"", "192.0.2.1", "mx.remote.test", "b@remote.test",
                        ("a@example.test", "c@example.test"), frozenset(), "s1")
    headers = request_headers(incoming, Policy(greylisting=False), "mx.remote.test")
    assert ("Rcpt", b"a@example.test") in headers and ("Rcpt", b"c@example.test") in headers
    assert ("From", b"b@remote.test") in headers and ("IP", b"192.0.2.1") in headers
    assert ("Hostname", b"mx.remote.test") in headers and ("Queue-Id", b"s1") in headers
    settings = dict(headers)["Settings"].decode()
    assert '"add_header": 6.0' in settings and "GREYLIST_CHECK" in settings


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"score": 1}'])
def test_a_reply_without_an_action_is_no_scan(body):
    with pytest.raises(ValueError):
        rspamd.parse(body)


@pytest.mark.parametrize(("action", "greylisting", "expected"), [
    ("reject", True, (Action.REJECT, "550")),
    ("add header", True, (Action.JUNK, "")),
    ("rewrite subject", True, (Action.JUNK, "")),
    ("soft reject", True, (Action.TEMPFAIL, "4.7.1")),
    ("greylist", True, (Action.TEMPFAIL, "4.7.1")),
    ("greylist", False, (Action.ACCEPT, "")),
    ("no action", True, (Action.ACCEPT, "")),
])
def test_rspamds_action_decides(action, greylisting, expected):
    scan = rspamd.Scan(action, 5.0, 15.0, ())
    verdict = verdict_for(scan, Policy(greylisting=greylisting))
    assert verdict.action == expected[0]
    if verdict.action == Action.TEMPFAIL:
        assert verdict.enhanced_status == expected[1]
    assert verdict.result("spam") == action


def test_greylist_without_greylisting_is_junk_when_the_score_says_so():
    verdict = verdict_for(rspamd.Scan("greylist", 7.0, 15.0, ()), Policy(greylisting=False))
    assert verdict.action == Action.JUNK
    assert b"X-Spam: Yes\r\n" in verdict.headers


def test_hostile_envelope_values_still_make_valid_request_headers():
    import httpx

    incoming = Incoming(b"From: \xff\xfe\r\n\r\n", "192.0.2.1", "evil\x00\x1b[2J\udcff\ud800",
                        "j\u00f6rg@b\u00fccher.test", ("a@example.test",), frozenset())
    headers = request_headers(incoming, Policy(), "")
    httpx.Request("POST", "http://127.0.0.1/checkv2", headers=headers)  # would raise
    assert dict(headers)["Helo"] == b"evil??[2J??"
    assert dict(headers)["From"].decode() == "j\u00f6rg@b\u00fccher.test"
    assert senders(incoming) == ["j\u00f6rg@b\u00fccher.test"]


def test_the_senders_own_x_spam_fields_are_removed():
    from mailcore.inbound.spam import strip_spam_fields

    content = (b"From: a@b.test\r\nX-Spam: No\r\nX-Spam-Status: No,\r\n score=-100\r\n"
               b"X-Spamming-Tool: kept\r\nSubject: s\r\n\r\nX-Spam: No\r\n")
    assert strip_spam_fields(content) == (b"From: a@b.test\r\nX-Spamming-Tool: kept\r\n"
                                          b"Subject: s\r\n\r\nX-Spam: No\r\n")
    assert strip_spam_fields(b"X-Spam: yes\r\n\r\nbody") == b"body"
    assert strip_spam_fields(b"no header block") == b"no header block"
