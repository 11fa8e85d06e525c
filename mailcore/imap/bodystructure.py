"""ENVELOPE, BODYSTRUCTURE and BODY in IMAP syntax, written byte for byte as Dovecot writes them.

The data comes from the message model (mailcore.message.envelope, mailcore.message.mime),
computed once at delivery; this module only renders it for FETCH (RFC 3501 section
7.4.2, RFC 9051 section 7.5.2). Strings go out quoted or as literals by Dovecot's rules,
which differ from the general ones in mailcore.imap.encode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailcore.message.header import raw

# -- ENVELOPE ---------------------------------------------------------------------------

def envelope_sexp(env: list) -> bytes:
    """Render an ENVELOPE list as IMAP syntax, e.g. b'("date" "subject" ((...)) ...)'."""
    date, subject, *address_lists, in_reply_to, message_id = env
    out = [nstring_nolf(date), human_string(subject)]
    out += [_address_list(addresses) for addresses in address_lists]
    out += [nstring_nolf(in_reply_to), nstring_nolf(message_id)]
    return b"(" + b" ".join(out) + b")"


def _address_list(addresses: Sequence[Sequence[str | None]] | None) -> bytes:
    if not addresses:
        return b"NIL"
    return b"(" + b"".join(
        b"(%s %s %s %s)" % (human_string(name), nstring(adl), nstring(mailbox), nstring(host))
        for name, adl, mailbox, host in addresses
    ) + b")"


# -- BODYSTRUCTURE and BODY (RFC 3501 section 7.4.2, RFC 9051 section 7.5.2) -------------

_EMPTY_BODY = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0'


def bodystructure_sexp(structure: dict, extensible: bool = True) -> bytes:
    """Render a part as BODYSTRUCTURE (extensible) or BODY, e.g. b'("text" "plain" ...)'."""
    return b"(" + _body(structure, extensible) + b")"


def _body(node: dict, ext: bool) -> bytes:
    if node["kind"] == "multipart":
        children = b"".join(bodystructure_sexp(child, ext) for child in node["parts"])
        if not children:
            # Deviation from RFC 3501 (which needs a part), as Dovecot: an empty text/plain.
            children = _EMPTY_BODY + (b" NIL NIL NIL NIL)" if ext else b")")
        out = [children + b" " + string(node["subtype"] or "")]
        if ext:
            out += [_params(node["params"], False), _extension(node)]
        return b" ".join(out)
    if node["kind"] == "message":
        is_text, out = False, [b'"message" "rfc822"']
    elif node["type"] is None:
        is_text, out = True, [b'"text" "plain"']
    else:
        is_text = node["type"].lower() == "text"
        out = [string(node["type"]), string(node["subtype"] or "")]
    encoding = node["encoding"]
    out += [
        _params(node["params"], is_text),
        nstring_nolf(node["id"]),
        nstring_nolf(node["description"]),
        b'"7bit"' if encoding is None else string(encoding),
        b"%d" % node["size"],
    ]
    if is_text:
        out.append(b"%d" % node["lines"])
    elif node["kind"] == "message":
        message = node["message"]
        out += [envelope_sexp(message["envelope"]), bodystructure_sexp(message, ext),
                b"%d" % node["lines"]]
    if ext:
        out += [nstring_nolf(node["md5"]), _extension(node)]
    return b" ".join(out)


def _params(params: list, default_charset: bool) -> bytes:
    """Render a parameter list; text parts get charset=us-ascii by default (RFC 2045 5.2)."""
    if not params and not default_charset:
        return b"NIL"
    out = [string(key) + b" " + string(value) for key, value in params]
    if default_charset and not any(key.lower() == "charset" for key, _ in params):
        out.append(b'"charset" "us-ascii"')
    return b"(" + b" ".join(out) + b")"


def _extension(node: dict) -> bytes:
    """Render body-fld-dsp, body-fld-lang and body-fld-loc."""
    if node["disposition"] is None:
        disposition = b"NIL"
    else:
        disposition = b"(%s %s)" % (string(node["disposition"]),
                                    _params(node["disposition_params"], False))
    languages = node["language"]
    language = b"NIL" if not languages else \
        b"(" + b" ".join(string(tag) for tag in languages) + b")"
    return b" ".join([disposition, language, nstring_nolf(node["location"])])


# -- IMAP strings, written as Dovecot writes them ---------------------------------------

_MAX_ESCAPES = 4  # more quoted-specials than this and a literal is shorter
_HUMAN_SPACE = re.compile(rb"[ \t\r\n]+")


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


def string(value: str | bytes) -> bytes:
    """Return a quoted string, or a literal for CR, LF, 8-bit or many quoted-specials."""
    data = raw(value) if isinstance(value, str) else value
    if re.search(rb"[\r\n\x80-\xff]", data) or \
            data.count(b'"') + data.count(b"\\") > _MAX_ESCAPES:
        return _literal(data)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def nstring(value: str | bytes | None) -> bytes:
    """Return NIL for None, else string(value)."""
    return b"NIL" if value is None else string(value)


def nstring_nolf(value: str | None) -> bytes:
    """Return nstring(value) with line breaks dropped (a space kept between lines)."""
    if value is None or ("\r" not in value and "\n" not in value):
        return nstring(value)
    out = []
    for i, ch in enumerate(value):
        if ch not in "\r\n":
            out.append(ch)
        elif i + 1 < len(value) and value[i + 1] not in " \t\r\n":
            out.append(" ")
    return nstring("".join(out))


def human_string(value: str | None) -> bytes:
    """Return a display string (subject, name) with runs of white space made one space.

    As Dovecot does, a value that needed any change, or holds '"', '\\' or 8-bit
    characters, goes out as a literal.
    """
    if value is None:
        return b"NIL"
    data = raw(value).replace(b"\x00", b"\x80")
    cleaned = _HUMAN_SPACE.sub(b" ", data).strip(b" ")
    if cleaned == data and not re.search(rb'["\\\x80-\xff]', data):
        return b'"' + data + b'"'
    if not cleaned:
        return b'""'
    return _literal(cleaned)
