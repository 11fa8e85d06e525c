"""Scripted sessions for the points where a conformance suite found us off the RFCs.

Each test is one deviation of issue 13, replayed over a socket with the exact replies
the RFC (and Dovecot, which passes the suite) gives.
"""

from __future__ import annotations

import pytest

from mailcore.message.transfer import decode_quoted_printable
from mailcore.store.delivery import deliver
from tests.imap_client import selected


def fetch(client, command: str) -> str:
    untagged, done = client.run(command)
    assert done.startswith("OK"), done
    assert len(untagged) == 1, untagged
    return untagged[0]


# BINARY: quoted-printable as RFC 2045 section 6.7 decodes it ------------------------------

QP_MESSAGE = (
    b"From: a@remote.test\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"padded line   \t\r\n"
    b"soft break= \t\r\n"
    b"joined =3D done\r\n"
)
QP_DECODED = b"padded line\r\nsoft breakjoined = done\r\n"


@pytest.mark.parametrize("encoded,decoded", [
    (b"a  \r\nb", b"a\r\nb"),  # trailing whitespace is transport padding (rule 3)
    (b"a= \r\nb", b"ab"),  # "=" then whitespace is still a soft line break (rule 5)
    (b"a=\r\nb=41", b"abA"),
    (b"x=zz=4", b"x=zz=4"),  # not an escape: kept as written, as readers do
])
def test_quoted_printable_decoding(encoded, decoded):
    assert decode_quoted_printable(encoded) == decoded


def test_binary_decodes_quoted_printable_per_rfc_2045(server, alice):
    deliver(QP_MESSAGE, "s@remote.test", [alice.pk])
    client = selected(server)
    assert fetch(client, "FETCH 1 BINARY.SIZE[1]") == (
        f"* 1 FETCH (BINARY.SIZE[1] {len(QP_DECODED)})")
    assert fetch(client, "FETCH 1 BINARY.PEEK[1]") == (
        f"* 1 FETCH (BINARY[1] {{{len(QP_DECODED)}}}\r\n{QP_DECODED.decode()})")
    assert fetch(client, "FETCH 1 BINARY.PEEK[1]<9.14>") == (
        "* 1 FETCH (BINARY[1]<9> {14}\r\nne\r\nsoft break)")
