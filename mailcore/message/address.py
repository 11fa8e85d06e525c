"""Address header fields (From, To, Cc...) read into Address values, as Dovecot reads them.

RFC 5322 section 3.4 with Dovecot's message-address rules: groups become a start marker
(the group name as mailbox) and an end marker (all four fields None), and broken
addresses are filled in with MISSING_MAILBOX / MISSING_DOMAIN rather than dropped.
"""

from __future__ import annotations

from typing import NamedTuple

from mailcore.message.header import Lexer, text


class Address(NamedTuple):
    """One address of an ENVELOPE (RFC 3501 section 7.4.2): header text, or None.

    A NamedTuple, so it is stored as the JSON list [name, adl, mailbox, host] and read
    back from the database as that list; code reading addresses unpacks four values.
    """

    name: str | None  # the display name, RFC 2047 words left encoded
    adl: str | None  # the source route ("@a,@b"), obsolete
    mailbox: str | None  # the local part, or the group name of a group start marker
    host: str | None  # the domain; None for a group marker


class _AddressParser:
    def __init__(self, value: bytes) -> None:
        self.lex = Lexer(value, keep_comments=True)
        self.out: list[list[bytes | None]] = []
        self.addr: list[bytes | None] = [None, None, None, None]  # name, route, mailbox, domain
        self.invalid = False

    def add(self) -> None:
        self.out.append(self.addr)
        self.addr = [None, None, None, None]
        self.invalid = False

    def add_fixed(self) -> None:
        if self.addr[2] is None:
            self.addr[2] = b"MISSING_MAILBOX"
        if not self.addr[3]:
            self.addr[3] = b"MISSING_DOMAIN"
        self.add()

    def local_part(self, into: bytearray) -> int:
        into.clear()
        if self.lex.peek() == 0x22:
            ret = self.lex.quoted_string(into)
        else:
            ret = self.lex.loose_dot_atom(into)
        if ret < 0:
            return -1
        self.addr[2] = bytes(into)
        return ret

    def domain(self) -> int:
        out = bytearray()
        ret = self.lex.domain(out)
        if ret < 0:
            return -1
        self.addr[3] = bytes(out)
        return ret

    def route(self) -> int:
        lex, out = self.lex, bytearray()
        while True:
            if lex.pos >= lex.end:
                return 0
            if lex.data[lex.pos] != 0x40:
                break
            if out:
                out += b","
            out += b"@"
            ret = lex.domain(out)
            if ret <= 0:
                return ret
            while lex.skip_lwsp() > 0 and lex.data[lex.pos] == 0x2C:
                lex.pos += 1
        self.addr[1] = bytes(out)
        return 1

    def angle_addr(self) -> int:
        lex = self.lex
        lex.pos += 1  # the "<"
        if lex.skip_lwsp() <= 0:
            return -1
        if lex.data[lex.pos] == 0x40:
            if self.route() > 0 and lex.peek() == 0x3A:
                lex.pos += 1
            else:
                self.addr[1] = b"INVALID_ROUTE"
                if lex.pos >= lex.end:
                    return -1
            if lex.skip_lwsp() <= 0:
                return -1
        if lex.data[lex.pos] != 0x3E:  # "<>" has neither mailbox nor domain
            if self.local_part(bytearray()) <= 0:
                return -1
            if lex.peek() == 0x40 and self.domain() <= 0:
                return -1
        if lex.peek() != 0x3E:
            return -1
        lex.pos += 1
        return lex.skip_lwsp()

    def name_addr(self) -> int:
        name = bytearray()
        if self.lex.phrase(name) <= 0 or self.lex.peek() != 0x3C:
            return -1
        self.addr[0] = bytes(name) or None
        if self.angle_addr() < 0:
            self.addr[3] = b"SYNTAX_ERROR"
            self.invalid = True
        return 1 if self.lex.pos < self.lex.end else 0

    def addr_spec(self) -> int:
        lex = self.lex
        assert lex.last_comment is not None
        lex.last_comment.clear()
        quoted = lex.peek() == 0x22
        text = bytearray()
        ret = self.local_part(text)
        if ret <= 0:
            self.invalid = True
        ret2 = -2
        if ret != 0 and lex.peek() == 0x40:
            ret2 = self.domain()
            if ret2 <= 0:
                ret = ret2
        if lex.last_comment:
            self.addr[0] = bytes(lex.last_comment)
        elif ret2 == -2:
            # A lone "user" is a mailbox, but "user more words" is a display name.
            text += b" "
            mark = len(text)
            lex.phrase(text)
            if len(text) != mark:
                self.addr[2] = None
                self.addr[0] = bytes(text)
            elif not quoted:
                self.addr[3] = b""
            self.invalid = True
            ret = -1
        return ret

    def mailbox(self) -> int:
        start = self.lex.pos
        ret = self.name_addr()
        if ret < 0:
            self.lex.pos = start
            self.addr = [None, None, None, None]
            ret = self.addr_spec()
            if self.invalid and self.addr[0] is None and self.addr[2] is not None \
                    and self.addr[3] is None:
                self.addr[0], self.addr[2] = self.addr[2], None
        if ret < 0:
            self.invalid = True
        self.add_fixed()
        return ret

    def group(self) -> int:
        lex, name = self.lex, bytearray()
        if lex.phrase(name) <= 0 or lex.peek() != 0x3A:
            return -1
        lex.pos += 1
        ret = lex.skip_lwsp()
        self.addr[2] = bytes(name)
        self.add()
        if ret > 0 and lex.data[lex.pos] != 0x3B:
            while True:
                self.mailbox()  # a broken mailbox does not end the group
                if lex.peek() != 0x2C:
                    break
                lex.pos += 1
                if lex.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if lex.peek() != 0x3B:
                ret = -1
            else:
                lex.pos += 1
                ret = lex.skip_lwsp()
        self.add()  # the group's end marker: all four fields NIL
        return 0 if ret == 0 else 1

    def address(self) -> int:
        start = self.lex.pos
        ret = self.group()
        if ret < 0:
            self.lex.pos = start
            self.addr = [None, None, None, None]
            ret = self.mailbox()
        return ret

    def address_list(self) -> list[list[bytes | None]]:
        lex = self.lex
        if lex.skip_lwsp() <= 0:
            return []
        while True:
            if self.address() == 0:
                break
            if lex.peek() != 0x2C:
                break
            lex.pos += 1
            ret = lex.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self.add_fixed()  # ends with some garbage
                break
        return self.out




def parse_addresses(value: bytes) -> list[Address]:
    """Return the addresses of an address header's value."""
    return [Address._make(map(text, addr)) for addr in _AddressParser(value).address_list()]
