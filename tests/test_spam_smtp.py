"""Spam filtering on port 25 with Debian's Rspamd: its actions, the domain's sensitivity and
greylisting, the mailbox's sender lists, and a filter that is down."""

from __future__ import annotations

import pytest

from mailcore import stats
from mailcore.models import Domain, Folder, Message, Refusal, SenderRule
from mailcore.webclient.trust import Trust, trust_of
from tests.conftest import REMOTE_IP
from tests.mailboxes import inbox, raw_of
from tests.rspamd_server import GTUBE
from tests.servers import RawClient, ServerThread, refusing_port
from tests.test_spam_rspamd import HAM

# A client nobody knows: no reverse DNS, a HELO name and a sender domain that do not
# resolve. Rspamd scores its plain message between "greylist" and "add header"... "reject".
STRANGER_IP = "198.51.100.7"
DOUBTFUL = (b"From: Offers <deals@unknown-sender.test>\r\nTo: alice@example.test\r\n"
            b"Subject: Your account\r\nMessage-ID: <x1@unknown-sender.test>\r\n\r\n"
            b"Hello, please read the attached details about your account.\r\n")


@pytest.fixture
def spam_server(rspamd, settings, alice):
    """mailcore as on the internet: sender authentication, then Rspamd."""
    settings.INBOUND_AUTH = True
    settings.RSPAMD_URL = rspamd.url
    settings.DNS_RESOLVER = rspamd.dns.address
    settings.INBOUND_DNS_TIMEOUT = 2
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    rspamd.forget_greylisting()
    thread = ServerThread().start()
    yield thread
    thread.stop()


def session(server: ServerThread, ip: str = REMOTE_IP, helo: str = "mail.remote.test"
            ) -> RawClient:
    """An SMTP session from ip (passed on by the PROXY protocol from loopback)."""
    client = RawClient(server.port("smtp"))
    client.send(f"PROXY TCP4 {ip} 127.0.0.1 40000 25")
    client.smtp_reply()
    client.transact(f"EHLO {helo}", "250 ", smtp=True)
    return client


def junk_of(mailbox) -> list[Message]:
    return list(Message.objects.filter(folder__mailbox=mailbox,
                                       folder__special_use=Folder.SpecialUse.JUNK))


def stranger_mail(server: ServerThread) -> str:
    client = session(server, STRANGER_IP, "mx.unknown-sender.test")
    try:
        return client.send_mail(DOUBTFUL, "deals@unknown-sender.test", ("alice@example.test",))
    finally:
        client.close()


def test_ham_lands_in_the_inbox_marked_as_scanned(spam_server, alice):
    client = session(spam_server)
    assert client.send_mail(HAM, "bob@remote.test", ("alice@example.test",)).startswith("250 ")
    (message,) = inbox(alice)
    assert b"\r\nX-Spam-Status: No, score=" in raw_of(message)
    assert junk_of(alice) == []
    # Webmail's trust line reads the Authentication-Results the listener added.
    assert trust_of(raw_of(message)) == Trust(True, "remote.test")


def test_gtube_is_refused_at_data_and_the_domain_owner_can_see_why(spam_server, alice):
    body = b"From: bob@remote.test\r\nSubject: test\r\n\r\n" + GTUBE.encode() + b"\r\n"
    client = session(spam_server)
    reply = client.send_mail(body, "bob@remote.test", ("alice@example.test",))
    assert reply.startswith("550 5.7.1 Message refused as spam (spam score 15")
    assert not Message.objects.filter(folder__mailbox=alice).exists()
    (refusal,) = Refusal.objects.all()
    assert refusal.domain == alice.domain and refusal.sender == "bob@remote.test"
    assert refusal.recipients == "alice@example.test" and not refusal.temporary
    assert refusal.client_ip == REMOTE_IP and "spam score" in refusal.reason
    counts = stats.tally._counts
    assert counts["rejected"] >= 1


def test_doubtful_mail_is_greylisted_where_the_domain_greylists(spam_server, alice):
    reply = stranger_mail(spam_server)
    assert reply == "451 4.7.1 Greylisted, try again later"
    assert not Message.objects.filter(folder__mailbox=alice).exists()
    assert Refusal.objects.get().temporary


def test_without_greylisting_doubtful_mail_goes_to_junk_with_its_score(spam_server, alice):
    Domain.objects.filter(pk=alice.domain_id).update(greylisting=False)
    assert stranger_mail(spam_server).startswith("250 ")
    assert inbox(alice) == []
    (message,) = junk_of(alice)
    raw = raw_of(message)
    assert b"\r\nX-Spam: Yes\r\nX-Spam-Status: Yes, score=" in raw


def test_a_relaxed_domain_takes_the_same_mail_into_the_inbox(spam_server, alice):
    Domain.objects.filter(pk=alice.domain_id).update(
        spam_sensitivity=Domain.SpamSensitivity.RELAXED)
    assert stranger_mail(spam_server).startswith("250 ")
    assert len(inbox(alice)) == 1 and junk_of(alice) == []


def test_a_sender_on_the_allow_list_skips_the_filter(spam_server, alice):
    SenderRule.objects.create(mailbox=alice, kind=SenderRule.Kind.ALLOW,
                              pattern="unknown-sender.test")
    assert stranger_mail(spam_server).startswith("250 ")
    (message,) = inbox(alice)
    assert b"X-Spam-Status: No, sender on the recipient's allow list" in raw_of(message)


def test_a_sender_on_the_block_list_is_refused(spam_server, alice):
    SenderRule.objects.create(mailbox=alice, kind=SenderRule.Kind.BLOCK,
                              pattern="bob@remote.test")
    client = session(spam_server)
    reply = client.send_mail(HAM, "bob@remote.test", ("alice@example.test",))
    assert reply == "550 5.7.1 The recipient does not accept mail from bob@remote.test"
    assert inbox(alice) == []


def test_a_block_entry_of_one_recipient_does_not_refuse_the_others(spam_server, alice, bob):
    SenderRule.objects.create(mailbox=alice, kind=SenderRule.Kind.BLOCK, pattern="remote.test")
    client = session(spam_server)
    reply = client.send_mail(HAM, "bob@remote.test", ("alice@example.test", "bob@example.test"))
    assert reply.startswith("250 ")
    assert len(inbox(bob)) == 1


@pytest.mark.parametrize("down", ["accept", "defer"])
def test_when_rspamd_is_down_mail_is_accepted_unscanned_or_deferred(rspamd, settings, alice,
                                                                    down):
    settings.DNS_RESOLVER = rspamd.dns.address
    settings.RSPAMD_DOWN = down
    with refusing_port() as port:
        settings.RSPAMD_URL = f"http://127.0.0.1:{port}"
        thread = ServerThread().start()
        try:
            client = RawClient(thread.port("smtp"))
            client.smtp_reply()
            client.transact("EHLO mail.remote.test", "250 ", smtp=True)
            reply = client.send_mail(HAM, "bob@remote.test", ("alice@example.test",))
        finally:
            thread.stop()
    if down == "accept":
        assert reply.startswith("250 ")
        assert b"\r\nX-Spam-Status: Unscanned\r\n" in raw_of(inbox(alice)[0])
    else:
        assert reply == "451 4.7.1 Spam filter unavailable; try again later"
        assert inbox(alice) == []


def test_without_rspamd_url_no_spam_filtering_runs(settings, alice):
    settings.RSPAMD_URL = ""
    from mailcore.inbound import pipeline
    from mailcore.inbound.spam import check_spam

    assert check_spam not in pipeline.steps()
    settings.RSPAMD_URL = "http://127.0.0.1:1"
    assert check_spam in pipeline.steps()


def test_a_senders_own_x_spam_verdict_is_replaced_by_ours(spam_server, alice):
    forged = HAM.replace(b"Subject:", b"X-Spam-Status: No, score=-50\r\nX-Spam: No\r\nSubject:")
    client = session(spam_server)
    assert client.send_mail(forged, "bob@remote.test", ("alice@example.test",)).startswith("250")
    raw = raw_of(inbox(alice)[0])
    assert raw.count(b"X-Spam-Status:") == 1 and b"score=-50" not in raw
    assert b"X-Spam: No" not in raw
