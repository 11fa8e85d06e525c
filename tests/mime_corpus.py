"""A corpus of tricky (and some broken) messages for the IMAP MIME parser and its tests.

Every message has CRLF line endings, as the store keeps them. corpus() returns
(name, raw bytes) pairs; the names say what each message exercises.
"""

from __future__ import annotations

import base64
import quopri


def crlf(text: str | bytes) -> bytes:
    """Return text as bytes (UTF-8) with every line ending made CRLF."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def b64(data: bytes) -> str:
    """Return base64 text wrapped at 76 columns, as MIME writes it."""
    return base64.encodebytes(data).decode("ascii")


def qp(text: str) -> str:
    return quopri.encodestring(text.encode("utf-8")).decode("ascii")


HEAD = (
    "Date: Tue, 14 May 2024 10:00:00 +0200\n"
    "From: Alice Example <alice@example.test>\n"
    "To: bob@example.test\n"
    "Message-ID: <{name}@example.test>\n"
)


def message(name: str, rest: str | bytes, head: str | None = None) -> tuple[str, bytes]:
    """Return (name, raw) for the standard envelope header followed by rest."""
    head = HEAD.format(name=name) if head is None else head
    rest = rest.encode("utf-8") if isinstance(rest, str) else rest
    return name, crlf(head.encode("utf-8") + rest)


def _simple() -> list[tuple[str, bytes]]:
    return [
        message("plain", "Subject: Hello\n\nJust text.\nTwo lines.\n"),
        message("plain_no_charset", "Subject: no charset\nMIME-Version: 1.0\n"
                "Content-Type: text/plain\n\nbody\n"),
        message("plain_charset_upper_types", "Subject: case\nMIME-Version: 1.0\n"
                "Content-Type: TEXT/Plain; CharSet=\"UTF-8\"; Format=Flowed\n"
                "Content-Transfer-Encoding: 8BIT\n\nGrüße\n"),
        message("missing_content_type", "Subject: no type\nMIME-Version: 1.0\n"
                "Content-Transfer-Encoding: quoted-printable\n\n" + qp("caf\u00e9 = ok\n")),
        message("cte_without_mime_version", "Subject: no MIME-Version\n"
                "Content-Transfer-Encoding: base64\n\n" + b64(b"hello")),
        message("base64_text", "Subject: base64\nMIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
                + b64("Grüße aus Köln\n".encode() * 20)),
        message("empty_body", "Subject: nothing\n\n"),
        message("header_only_no_blank_line", "Subject: only a header\n"),
        message("no_final_newline", "Subject: no final newline\n\nlast line"),
        message("header_only_no_newline", "Subject: header without a line break at the end"),
        message("image_all_fields", "Subject: all the fields\nMIME-Version: 1.0\n"
                "Content-Type: image/png; name=\"dot.png\"\n"
                "Content-Transfer-Encoding: base64\n"
                "Content-ID: <dot@example.test>\n"
                "Content-Description: A red dot\n"
                "Content-Disposition: attachment; filename=\"dot.png\"; size=68;\n"
                " creation-date=\"Tue, 14 May 2024 10:00:00 +0200\"\n"
                "Content-Language: en, de-CH\n"
                "Content-Location: http://example.test/dot.png\n"
                "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\n" + b64(bytes(range(68)))),
    ]


def _headers() -> list[tuple[str, bytes]]:
    long_subject = " ".join(f"word{i}" for i in range(300))
    long_to = ",\n ".join(f"\"Person {i}\" <person{i}@example.test>" for i in range(60))
    return [
        message("encoded_words", "Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?= and\n"
                " =?ISO-8859-1?Q?caf=E9?=\n\nbody\n",
                head="From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.test>\n"
                "To: \"=?UTF-8?Q?Ren=C3=A9?=\" <rene@example.test>\n"
                "Message-ID: <encoded@example.test>\n"),
        message("eight_bit_headers", "Subject: Grüße aus Köln – 東京\n\nbody\n",
                head="From: Jürgen Müller <juergen@example.test>\n"
                "To: Zoë <zoe@example.test>\nMessage-ID: <8bit@example.test>\n"),
        message("groups", "Subject: groups\n\nbody\n",
                head="From: alice@example.test\n"
                "To: undisclosed-recipients:;\n"
                "Cc: Team: bob@example.test, \"Carol C.\" <carol@example.test>;,\n"
                " dave@example.test, Empty Group: ;\n"
                "Bcc: Other:erin@example.test;\n"),
        message("address_oddities", "Subject: odd addresses\n\nbody\n",
                head="From: Pete(A wonderful \\) chap) <pete(his account)@silly.test(his host)>\n"
                "Sender: \"Joe Q. Public\" <john.q.public@example.test>\n"
                "Reply-To: <@relay1.test,@relay2.test:mary@example.test>\n"
                "To: mary@[192.0.2.1], .dotty.@example.test, \"quoted local\"@example.test\n"
                "Cc: (comment only) chris@example.test (Chris)\n"
                "Bcc: <>\n"),
        message("broken_addresses", "Subject: broken addresses\n\nbody\n",
                head="From: just a name\n"
                "Sender: user@\n"
                "Reply-To: nodomain\n"
                "To: <unterminated@example.test\n"
                "Cc: a@b, , c@d,\n"),
        message("duplicate_headers", "Subject: first subject\nSubject: second subject\n\nbody\n",
                head="From: one@example.test\nFrom: two@example.test\n"
                "Message-ID: <dup1@example.test>\nMessage-ID: <dup2@example.test>\n"),
        message("folded_and_odd_values", "Subject: folded\n\tsubject  with   spaces \n"
                "In-Reply-To: <a@example.test>\n\t<b@example.test>\n"
                "Content-Description: not MIME, so ignored\n\nbody\n",
                head="Date:\n Tue, 14 May 2024\n 10:00:00 +0200\n"
                "From: alice@example.test\nMessage-ID:\n <folded@example.test>\n"),
        message("quoted_specials", "Subject: she said \"hi\" \\o/\n\nbody\n",
                head="From: \"Joe \\\"JJ\\\" Bloggs\" <joe@example.test>\n"
                "Message-ID: <\"a\\\"b\"@example.test>\n"
                "In-Reply-To: <\"\"\"\"\"\"@example.test>\n"),
        message("tab_and_empty_subject", "Subject:\t\n\nbody\n",
                head="From: alice@example.test\nDate: \nMessage-ID: <tab@example.test>\n"),
        message("long_header_lines", f"Subject: {long_subject}\n"
                f"X-Long: {'x' * 2000}\n\nbody\n",
                head=f"From: alice@example.test\nTo: {long_to}\n"
                "Message-ID: <long@example.test>\n"),
        message("header_oddities", "Subject: odd header lines\n"
                "X-No-Colon-Line\n"
                "X-Space-Before-Colon : value\n"
                "Subject2:value-without-space\n"
                "Content-Type\n\t: text/html\nFrom\n : not@a.field\n\nbody\n"),
    ]


def _multiparts() -> list[tuple[str, bytes]]:
    nested = (
        "Subject: nested\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"outer\"\n\n"
        "This is a multi-part message in MIME format.\n\n"
        "--outer\n"
        "Content-Type: multipart/alternative; boundary=\"alt\"\n\n"
        "--alt\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "Plain version.\n\n"
        "--alt\n"
        "Content-Type: multipart/related; boundary=\"rel\"; type=\"text/html\"\n\n"
        "--rel\n"
        "Content-Type: text/html; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        + qp("<p>HTML version – with an image <img src=\"cid:img1\"></p>\n") +
        "--rel\n"
        "Content-Type: image/gif\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-ID: <img1>\n"
        "Content-Disposition: inline\n\n"
        + b64(b"GIF89a" + bytes(40)) +
        "--rel--\n\n"
        "--alt--\n"
        "--outer\n"
        "Content-Type: application/pdf; name=\"report.pdf\"\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=\"report.pdf\"\n\n"
        + b64(b"%PDF-1.4 fake" * 10) +
        "--outer--\n"
        "This is the epilogue.\nIt has two lines.\n"
    )
    return [
        message("nested_mixed_alternative_related", nested),
        message("preamble_epilogue", "Subject: preamble\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "preamble line 1\npreamble line 2\n--b\n\npart one, no header\n"
                "--b\nContent-Type: text/plain\n\npart two\n--b--\nepilogue\n"),
        message("boundary_never_closed", "Subject: unclosed\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=\"never\"\n\n"
                "--never\nContent-Type: text/plain\n\nfirst\n"
                "--never\nContent-Type: text/html\n\n<p>last, runs to the end</p>\n"),
        message("missing_boundary", "Subject: no boundary\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed\n\n--x\n\nlooks like a part\n--x--\n"),
        message("empty_multipart", "Subject: empty multipart\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n--b--\n"),
        message("boundary_prefixes", "Subject: prefixes\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=\"ab\"\n\n"
                "--ab\nContent-Type: multipart/alternative; boundary=\"abc\"\n\n"
                "--abc\n\ninner one\n--abc\n\ninner two\n--abc--\n"
                "--ab\n\nouter two\n--ab--\n"),
        message("inner_unclosed_outer_closes", "Subject: inner unclosed\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=outer\n\n"
                "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n"
                "--inner\n\nnever closed inner\n"
                "--outer\nContent-Type: text/plain\n\nafter\n--outer--\n"),
        message("boundary_line_garbage", "Subject: garbage after boundaries\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "--b   \n\nx\n--b-- trailing words\nepilogue\n"),
        message("header_cut_by_boundary", "Subject: header cut\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "--b\nContent-Type: text/plain\n--b\n\nsecond\n--b--\n"),
        message("mime_part_without_headers", "Subject: bare parts\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "--b\n\nno header at all\n--b\n\n\n--b--\n"),
        message("quoted_printable_and_base64", "Subject: encodings\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=\"=_enc\"\n\n"
                "--=_enc\nContent-Type: text/plain; charset=iso-8859-1\n"
                "Content-Transfer-Encoding: quoted-printable\n\n"
                "caf=E9 na=EFve =\nsoft break\n"
                "--=_enc\nContent-Type: application/octet-stream\n"
                "Content-Transfer-Encoding: base64\n\n" + b64(bytes(range(256))) +
                "--=_enc--\n"),
        message("digest", "Subject: digest\nMIME-Version: 1.0\n"
                "Content-Type: multipart/digest; boundary=d\n\n"
                "--d\n\nFrom: one@example.test\nSubject: first digested\n\nbody one\n"
                "--d\nContent-Type: text/plain\n\nnot a message\n"
                "--d\n\nSubject: third\nContent-Type: multipart/alternative; boundary=in\n\n"
                "--in\n\nalt one\n--in--\n"
                "--d--\n"),
    ]


def _params() -> list[tuple[str, bytes]]:
    return [
        message("rfc2231_filenames", "Subject: RFC 2231\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "--b\nContent-Type: application/octet-stream;\n"
                " name*0*=utf-8'de'%E2%82%AC%20rates;\n name*1=\" 2024.txt\"\n"
                "Content-Disposition: attachment;\n filename*0*=utf-8''%E2%82%AC%20rates;\n"
                " filename*1*=%20100%25.txt; filename=\"fallback.txt\"\n\nx\n"
                "--b\nContent-Type: text/plain; name*=iso-8859-1''caf%E9.txt; charset=us-ascii\n"
                "Content-Disposition: inline; filename*2=c; filename*0=a; filename*1=b\n\ny\n"
                "--b\nContent-Type: application/x-gaps; title*0=one; title*2=three\n"
                "Content-Disposition: attachment; filename=\"=?UTF-8?B?w6TDtsO8LnR4dA==?=\"\n"
                "\nz\n--b--\n"),
        message("params_broken", "Subject: broken params\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "--b\nContent-Type: text/plain; charset=; format; delsp=\"yes\"\n\na\n"
                "--b\nContent-Type: text/plain; name==?utf-8?q?caf=C3=A9?=; x=\"a\\\"b\\\\c\"\n"
                "\nb\n"
                "--b\nContent-Type: text/plain (a comment) ; charset = \"utf-8\" (more)\n\nc\n"
                "--b\nContent-Disposition: ; filename=nameless\n\nd\n"
                "--b\nContent-Type: application/x; a=1; A=2\n\ne\n--b--\n"),
        message("content_type_broken", "Subject: broken types\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "--b\nContent-Type: text\n\nno subtype\n"
                "--b\nContent-Type: text/plain garbage; charset=utf-8\n\ngarbage after\n"
                "--b\nContent-Type: /plain\n\nno type\n"
                "--b\nContent-Type:\n\nempty\n"
                "--b\nContent-Type: image/gif\nContent-Type: text/plain\n\ntwo types\n"
                "--b\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit garbage\n"
                "Content-Language: en de\n\nbad encoding\n--b--\n"),
        message("disposition_language_location", "Subject: extension data\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b; charset=ignored\n"
                "Content-Disposition: inline\nContent-Language: fr\n"
                "Content-Location: folded\n location\n\n"
                "--b\nContent-Type: text/plain\nContent-Disposition: INLINE\n"
                "Content-Language: en-GB,\n fr-CA , x-klingon\n"
                "Content-Location: relative/path.txt\n\nx\n--b--\n"),
    ]


def _messages() -> list[tuple[str, bytes]]:
    inner = (
        "From: Inner Sender <inner@example.test>\n"
        "To: Inner Group: a@example.test, b@example.test;\n"
        "Subject: =?UTF-8?Q?Forwarded_=E2=80=93_inner?=\n"
        "Date: Mon, 13 May 2024 09:00:00 +0000\n"
        "Message-ID: <inner@example.test>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/alternative; boundary=\"inner-alt\"\n\n"
        "--inner-alt\nContent-Type: text/plain; charset=utf-8\n\nInner plain.\n"
        "--inner-alt\nContent-Type: text/html; charset=utf-8\n\n<p>Inner html.</p>\n"
        "--inner-alt--\n"
    )
    return [
        message("forwarded_multipart", "Subject: Fwd: inner\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=fwd\n\n"
                "--fwd\nContent-Type: text/plain\n\nSee attached.\n"
                "--fwd\nContent-Type: message/rfc822; name=\"inner.eml\"\n"
                "Content-Disposition: attachment; filename=\"inner.eml\"\n"
                "Content-Description: the original\n\n" + inner + "--fwd--\n"),
        message("rfc822_single_part_inner", "Subject: single inner\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=fwd\n\n"
                "--fwd\nContent-Type: MESSAGE/RFC822\n\n"
                "Subject: inner plain\nFrom: x@example.test\nCc: y@example.test\n\n"
                "Line one.\nLine two.\n--fwd--\n"),
        message("rfc822_top_level", "Subject: whole message is message/rfc822\n"
                "MIME-Version: 1.0\nContent-Type: message/rfc822\n\n" + inner),
        message("rfc822_nested_twice", "Subject: nested twice\nMIME-Version: 1.0\n"
                "Content-Type: message/rfc822\n\n"
                "Subject: middle\nMIME-Version: 1.0\nContent-Type: message/rfc822\n\n"
                "Subject: innermost\nFrom: deep@example.test\n\ndeep body\n"),
        message("rfc822_no_headers", "Subject: empty inner\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "--b\nContent-Type: message/rfc822\n\n\nonly a body\n--b--\n"),
        message("rfc822_truncated_by_boundary", "Subject: truncated inner\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "--b\nContent-Type: message/rfc822\n\n"
                "Subject: inner header cut\nFrom: cut@example.test\n--b--\n"),
        message("message_global_is_opaque", "Subject: message/global\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "--b\nContent-Type: message/global\n\nSubject: not parsed\n\nbody\n--b--\n"),
    ]


def latin1_header() -> tuple[str, bytes]:
    """A header with raw Latin-1 bytes (invalid UTF-8): the one documented deviation."""
    return "latin1_subject", crlf(b"Subject: Gr\xfc\xdfe\nFrom: J\xfcrgen <j@example.test>\n"
                                   b"\nbody\n")


def corpus() -> list[tuple[str, bytes]]:
    """Return every message of the corpus, in a stable order."""
    return [*_simple(), *_headers(), *_multiparts(), *_params(), *_messages(),
            latin1_header()]
