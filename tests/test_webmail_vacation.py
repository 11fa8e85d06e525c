"""Vacation auto-replies: answered once per sender, never to lists, robots or bounces."""

from __future__ import annotations

import email
from datetime import date, datetime, timedelta
from email import policy

import pytest

from mailcore import stats
from mailcore.models import Message, OutboundMessage
from mailcore.principal import Principal
from mailcore.sending import vacation
from mailcore.sending.vacation import Vacation
from mailcore.store import messages as store_messages
from mailcore.store.blobs import blob_store
from tests.test_webmail_helpers import folder, make_message

NOW = datetime(2025, 7, 10, 12, 0, tzinfo=vacation.timezone.get_current_timezone())
AWAY = Vacation(enabled=True, subject="Away until Monday", body="I am away; back on Monday.",
                start=date(2025, 7, 1), end=date(2025, 7, 20))
OWN = ["alice@example.test"]


class MemoryLog:
    """A ReplyLog kept in memory (the tests' stand-in for the table it needs)."""

    def __init__(self) -> None:
        self.replies: dict[str, datetime] = {}

    def replied_since(self, sender: str, since: datetime) -> bool:
        return sender in self.replies and self.replies[sender] >= since

    def record(self, sender: str, when: datetime) -> None:
        self.replies[sender] = when


def _decide(raw: bytes, sender: str = "friend@remote.test", settings: Vacation = AWAY,
            log: MemoryLog | None = None, now: datetime = NOW) -> vacation.Decision:
    return vacation.decide(settings, OWN, raw, sender, log or MemoryLog(), now)


def test_a_personal_message_gets_an_answer_to_its_envelope_sender() -> None:
    decision = _decide(make_message(), sender="Friend@Remote.test")
    assert decision.reply and decision.to == "friend@remote.test"


@pytest.mark.parametrize(("raw", "sender", "reason"), [
    (make_message(), "", "null sender"),
    (make_message(), "<>", "null sender"),
    (make_message(), "MAILER-DAEMON@remote.test", "automated sender"),
    (make_message(), "owner-list@remote.test", "automated sender"),
    (make_message(), "list-request@remote.test", "automated sender"),
    (make_message(), "noreply@shop.test", "automated sender"),
    (make_message(headers={"Auto-Submitted": "auto-replied"}), "friend@remote.test",
     "auto-submitted"),
    (make_message(headers={"Auto-Submitted": "auto-generated"}), "friend@remote.test",
     "auto-submitted"),
    (make_message(headers={"List-Id": "<news.remote.test>"}), "friend@remote.test",
     "mailing list"),
    (make_message(headers={"List-Unsubscribe": "<mailto:u@remote.test>"}),
     "friend@remote.test", "mailing list"),
    (make_message(headers={"Precedence": "bulk"}), "friend@remote.test", "bulk mail"),
    (make_message(headers={"Precedence": "list"}), "friend@remote.test", "bulk mail"),
    (make_message(headers={"Precedence": "junk"}), "friend@remote.test", "bulk mail"),
    (make_message(headers={"X-Auto-Response-Suppress": "OOF, AutoReply"}),
     "friend@remote.test", "suppressed"),
    (make_message(to="team@remote.test"), "friend@remote.test",
     "not addressed to the mailbox"),
    (make_message(), "alice@example.test", "own address"),
])
def test_it_never_answers_robots_lists_bounces_or_bcc(raw: bytes, sender: str,
                                                       reason: str) -> None:
    decision = _decide(raw, sender=sender)
    assert not decision.reply and decision.reason == reason


def test_auto_submitted_no_is_a_person() -> None:
    assert _decide(make_message(headers={"Auto-Submitted": "no"})).reply


def test_it_answers_only_between_its_dates_and_when_on() -> None:
    assert not _decide(make_message(), now=NOW.replace(month=6)).reply
    assert not _decide(make_message(), now=NOW.replace(day=21)).reply
    assert _decide(make_message(), now=NOW.replace(day=20)).reply
    off = Vacation(enabled=False, body="x")
    assert _decide(make_message(), settings=off).reason == "off"


def test_each_sender_is_answered_once_in_the_interval() -> None:
    log = MemoryLog()
    log.record("friend@remote.test", NOW)
    assert _decide(make_message(), log=log).reason == "already answered"
    assert _decide(make_message(), log=log, now=NOW + timedelta(days=6)).reason == \
        "already answered"
    assert _decide(make_message(), log=log, now=NOW + timedelta(days=7, minutes=1)).reply
    assert _decide(make_message(), sender="other@remote.test", log=log).reply


def test_the_answer_is_marked_auto_replied_and_threads_with_the_original(alice) -> None:
    me = Principal.of(alice)
    raw = make_message(subject="Quote request")
    reply = email.message_from_bytes(
        vacation.build_reply(AWAY, me, raw, "friend@remote.test", NOW), policy=policy.default)
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["From"] == "Alice <alice@example.test>"
    assert reply["To"] == "friend@remote.test"
    assert reply["Subject"] == "Away until Monday"
    original_id = email.message_from_bytes(raw, policy=policy.default)["Message-ID"]
    assert reply["In-Reply-To"] == original_id and reply["References"] == original_id
    untitled = Vacation(enabled=True, body="Away.")
    assert email.message_from_bytes(vacation.build_reply(untitled, me, raw, "f@r.test"),
                                    policy=policy.default)["Subject"] == "Auto: Quote request"


def test_respond_sends_through_submission_with_a_null_sender_and_remembers(alice, bob,
                                                                          kicked) -> None:
    me = Principal.of(alice)
    log = MemoryLog()
    now = vacation.timezone.now()
    settings = Vacation(enabled=True, body="Back soon.")
    raw = make_message(sender="Bob <bob@example.test>")
    assert vacation.respond(settings, me, raw, "bob@example.test", log, now).reply
    answer = Message.objects.get(folder=folder(bob))
    stored = store_messages.read(answer)
    assert stored.startswith(b"Return-Path: <>\r\n")
    assert b"Auto-Submitted: auto-replied" in stored and b"DKIM-Signature:" in stored
    assert log.replies == {"bob@example.test": now}
    # The second message from the same sender is not answered again.
    assert vacation.respond(settings, me, raw, "bob@example.test", log, now).reason == \
        "already answered"
    assert Message.objects.filter(folder=folder(bob)).count() == 1
    # A remote sender's answer is queued with the null sender.
    assert vacation.respond(settings, me, make_message(), "friend@remote.test", log, now).reply
    queued = OutboundMessage.objects.get()
    assert queued.mail_from == ""
    assert b"Auto-Submitted: auto-replied" in blob_store().get(queued.blob_id)
    # An auto-reply is system mail: labelled so in the queue, not counted as alice's.
    assert queued.system
    assert stats.hourly().totals["system"] == 2 and stats.hourly().totals["sent"] == 0
    assert stats.busiest_senders() == []


def test_mail_to_an_alias_of_the_mailbox_is_answered(alice) -> None:
    me = Principal.of(alice)
    from mailcore import directory

    directory.add_alias("help@example.test", ["alice@example.test"])
    log = MemoryLog()
    decision = vacation.respond(Vacation(enabled=True, body="Away."), me,
                                make_message(to="help@example.test"), "friend@remote.test",
                                log)
    assert decision.reply
