"""SASL (RFC 4422) for every protocol: decoding the PLAIN (RFC 4616) and LOGIN responses."""

from __future__ import annotations

import base64
import binascii


class SASLError(ValueError):
    """A client's SASL response that cannot be decoded; the exchange fails."""


class Cancelled(SASLError):
    """The client answered a challenge with "*" (RFC 4422 section 3.5)."""


def decode_response(text: str | bytes) -> bytes:
    """Return a base64 client response decoded; "=" is the empty one (RFC 4954 section 4)."""
    if isinstance(text, str):
        text = text.encode("ascii", "replace")
    text = text.strip()
    if text == b"*":
        raise Cancelled("authentication cancelled")
    if text == b"=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise SASLError("response is not base64") from None


def decode_plain(response: bytes) -> tuple[str, str, str]:
    """Return (authzid, authcid, password) from a decoded PLAIN response (RFC 4616 section 2).

    Raise SASLError unless it is three NUL-separated UTF-8 fields, the user and the
    password not empty.
    """
    try:
        authzid, user, password = response.decode("utf-8").split("\0")
    except (UnicodeDecodeError, ValueError):
        raise SASLError("malformed PLAIN response") from None
    if not user or not password:
        raise SASLError("malformed PLAIN response")
    return authzid, user, password


def decode_text(response: bytes) -> str:
    """Return a decoded LOGIN response (a user name or a password) as text."""
    try:
        return response.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError("response is not UTF-8") from None
