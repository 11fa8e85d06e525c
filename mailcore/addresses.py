"""Address rules: splitting, normalising and validating mailbox addresses and domain names."""

from __future__ import annotations

import re
import unicodedata

_LOCAL_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class AddressError(ValueError):
    """The text is not an address (or domain) this server can host or route."""


def normalize_domain(name: str) -> str:
    """Return a domain name in lower-case IDNA form, or raise AddressError."""
    name = name.strip().rstrip(".")
    if not name:
        raise AddressError("empty domain name")
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise AddressError(f"invalid domain name: {name!r}") from exc
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2 or not all(_LABEL.match(lb) for lb in labels):
        raise AddressError(f"invalid domain name: {name!r}")
    return ascii_name


def normalize_local_part(local: str) -> str:
    """Return a local part in lower case, or raise AddressError."""
    local = local.strip()
    if not local or len(local.encode()) > 64:
        raise AddressError("local part must be 1 to 64 octets")
    # SMTPUTF8 (RFC 6531, RFC 6532): a non-ASCII character may stand where atext does, if
    # it is a character people write (not a control, format, surrogate or unassigned code
    # point); the ASCII characters around it follow the same dot-atom rules as ever.
    if any(not ch.isascii() and unicodedata.category(ch).startswith("C") for ch in local):
        raise AddressError(f"invalid local part: {local!r}")
    atoms = "".join(ch if ch.isascii() else "a" for ch in local)
    dots_ok = not (atoms.startswith(".") or atoms.endswith(".") or ".." in atoms)
    if not _LOCAL_ATOM.match(atoms) or not dots_ok:
        raise AddressError(f"invalid local part: {local!r}")
    return local.lower()


def split_address(address: str) -> tuple[str, str]:
    """Return (local part, domain) normalised, or raise AddressError."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    local, at, domain = address.rpartition("@")
    if not at:
        raise AddressError(f"not an address: {address!r}")
    return normalize_local_part(local), normalize_domain(domain)


def normalize_address(address: str) -> str:
    local, domain = split_address(address)
    return f"{local}@{domain}"
