"""The PROXY protocol (v1 and v2): the real client address, from trusted load balancers only.

HAProxy in TCP mode with send-proxy (or send-proxy-v2) opens each connection to us with
one header naming the client it relays, then passes the client's bytes through unchanged
(TLS included). The format: https://www.haproxy.org/download/2.0/doc/proxy-protocol.txt
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured

V1_PREFIX = b"PROXY "
V1_MAX = 107  # section 2.1: the longest v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version and command, family and transport, length
# Section 2.2 allows 65535 bytes after the fixed part. Addresses take at most 216 (UNIX);
# the rest is TLVs, of which HAProxy sends a few hundred bytes at most (SSL, unique id).
V2_MAX_PAYLOAD = 2048
_V2_ADDRESS_SIZES = {0x1: 4, 0x2: 16}  # INET, INET6: bytes per address
_V2_UNIX, _V2_UNSPEC = 0x3, 0x0
_V2_STREAM = 0x1
_V2_LOCAL, _V2_PROXY = 0x0, 0x1
_PP2_TYPE_CRC32C = 0x03


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, RFC 3720 appendix B.4), as PROXY v2's checksum TLV uses it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class BadHeader(ValueError):
    """The bytes are not a PROXY protocol header we accept."""


@dataclass(frozen=True)
class ProxyHeader:
    """What a header says: the client's address (None: use the connection's own)."""

    source: tuple[str, int] | None
    destination: tuple[str, int] | None = None
    tlvs: tuple[tuple[int, bytes], ...] = field(default=())  # v2 type-length-values, in order


@dataclass(frozen=True)
class Peer:
    """Who a connection is from: the client's address, and the proxy that relayed it."""

    ip: str
    port: int
    proxy: str = ""  # the trusted proxy's address, when a PROXY header named the client


class TrustedProxies:
    """The addresses and networks (TRUSTED_PROXIES) whose PROXY headers are believed."""

    def __init__(self, entries: Iterable[str]) -> None:
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip()))
            except ValueError as exc:
                raise ImproperlyConfigured(
                    f"TRUSTED_PROXIES: {entry!r} is not an address or a network ({exc})"
                ) from None
        self.networks = tuple(networks)

    @classmethod
    def from_settings(cls) -> TrustedProxies:
        from django.conf import settings

        return cls(settings.TRUSTED_PROXIES)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: str) -> bool:
        if not self.networks:
            return False
        try:
            ip = unmapped(ipaddress.ip_address(address))
        except ValueError:  # not an IP peer (a UNIX socket): never a proxy of ours
            return False
        return any(ip in network for network in self.networks)


def unmapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
             ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Return an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it carries.

    A dual-stack socket or proxy reports IPv4 clients that way; throttles, the loopback
    rule and the trusted-proxy check must see one client as one address.
    """
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_v1(line: bytes) -> ProxyHeader:
    """Parse a whole v1 line, CRLF included (section 2.1)."""
    if len(line) > V1_MAX or not line.startswith(V1_PREFIX) or not line.endswith(b"\r\n"):
        raise BadHeader("not a v1 line")
    fields = line[:-2].split(b" ")
    if fields[1] == b"UNKNOWN":
        return ProxyHeader(None)  # the proxy could not tell: the rest of the line is ignored
    if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
        raise BadHeader("v1 line has the wrong fields")
    version = 4 if fields[1] == b"TCP4" else 6
    source = _v1_address(fields[2], fields[4], version)
    destination = _v1_address(fields[3], fields[5], version)
    return ProxyHeader(source, destination)


def _v1_address(address: bytes, port: bytes, version: int) -> tuple[str, int]:
    try:
        ip = ipaddress.ip_address(address.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BadHeader("v1 address is not an IP address") from None
    if ip.version != version:
        raise BadHeader("v1 address is of the other family")
    # Section 2.1: ports are decimal, 0 to 65535, without leading zeroes.
    if not (port.isdigit() and len(port) <= 5 and (port == b"0" or port[:1] != b"0")):
        raise BadHeader("v1 port is not a number")
    number = int(port)
    if number > 65535:
        raise BadHeader("v1 port out of range")
    return str(unmapped(ip)), number


def v2_payload_length(fixed: bytes) -> int:
    """Return how many bytes follow a v2 header's fixed 16 (section 2.2), checked first."""
    if len(fixed) != V2_FIXED or not fixed.startswith(V2_SIGNATURE):
        raise BadHeader("not a v2 header")
    if fixed[12] >> 4 != 2:
        raise BadHeader("v2 header of an unknown version")
    if fixed[12] & 0x0F not in (_V2_LOCAL, _V2_PROXY):
        raise BadHeader("v2 header with an unknown command")
    (length,) = struct.unpack("!H", fixed[14:16])
    if length > V2_MAX_PAYLOAD:
        raise BadHeader("v2 header too long")
    return length


def parse_v2(header: bytes) -> ProxyHeader:
    """Parse a whole v2 header: the fixed 16 bytes and the payload they announce."""
    length = v2_payload_length(header[:V2_FIXED])
    payload = header[V2_FIXED:]
    if len(payload) != length:
        raise BadHeader("v2 header length does not match")
    if header[12] & 0x0F == _V2_LOCAL:
        # Section 2.2: LOCAL is the proxy's own connection (a health check); the address
        # block, if any, is to be ignored.
        return ProxyHeader(None)
    family, transport = header[13] >> 4, header[13] & 0x0F
    if family == _V2_UNSPEC:
        return ProxyHeader(None)  # "the receiver ... must use the real connection endpoints"
    if transport != _V2_STREAM:
        raise BadHeader("v2 header for a datagram or unknown transport")
    if family == _V2_UNIX:
        if length < 216:
            raise BadHeader("v2 address block too short")
        return ProxyHeader(None, tlvs=_v2_tlvs(payload[216:]))  # no IP to use
    size = _V2_ADDRESS_SIZES.get(family)
    if size is None:
        raise BadHeader("v2 header of an unknown address family")
    block = 2 * size + 4
    if length < block:
        raise BadHeader("v2 address block too short")
    source_ip = unmapped(ipaddress.ip_address(payload[:size]))
    destination_ip = unmapped(ipaddress.ip_address(payload[size:2 * size]))
    source_port, destination_port = struct.unpack("!HH", payload[2 * size:block])
    tlvs = _v2_tlvs(payload[block:])
    _check_crc32c(header, V2_FIXED + block, tlvs)
    return ProxyHeader((str(source_ip), source_port), (str(destination_ip), destination_port),
                       tlvs)


def _v2_tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    """Split the TLVs after the addresses (section 2.2.7); each must fit exactly."""
    tlvs = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 3:
            raise BadHeader("v2 TLV truncated")
        kind, size = data[offset], struct.unpack("!H", data[offset + 1:offset + 3])[0]
        value = data[offset + 3:offset + 3 + size]
        if len(value) != size:
            raise BadHeader("v2 TLV longer than the header")
        tlvs.append((kind, value))
        offset += 3 + size
    return tuple(tlvs)


def _check_crc32c(header: bytes, first_tlv: int, tlvs: tuple[tuple[int, bytes], ...]) -> None:
    """Check a PP2_TYPE_CRC32C TLV, if the proxy sent one (section 2.2.5).

    The checksum covers the whole header with the checksum's own four bytes zeroed; a
    header that fails it was damaged or forged in transit and is refused.
    """
    offset = first_tlv
    for kind, value in tlvs:
        if kind == _PP2_TYPE_CRC32C:
            if len(value) != 4:
                raise BadHeader("v2 CRC32C TLV is not four bytes")
            start = offset + 3
            zeroed = header[:start] + b"\x00" * 4 + header[start + 4:]
            if crc32c(zeroed) != struct.unpack("!I", value)[0]:
                raise BadHeader("v2 header fails its CRC32C")
        offset += 3 + len(value)


async def read_header(sock: socket.socket) -> ProxyHeader:
    """Read one header (v1 or v2) from a non-blocking socket, and not a byte more.

    What follows belongs to the session, perhaps a TLS handshake, so nothing beyond the
    header is consumed: v2 announces its length, and v1 is read a byte at a time after its
    first 12 (both are at least that long; a v1 line is at most 107 bytes, sent once per
    connection). The caller bounds the time; EOFError when the peer hangs up first.
    """
    start = await _receive_exactly(sock, len(V2_SIGNATURE))
    if start == V2_SIGNATURE:
        fixed = start + await _receive_exactly(sock, V2_FIXED - len(start))
        payload = await _receive_exactly(sock, v2_payload_length(fixed))
        return parse_v2(fixed + payload)
    if not start.startswith(V1_PREFIX):
        raise BadHeader("no PROXY header")
    line = bytearray(start)
    while not line.endswith(b"\n"):
        if len(line) >= V1_MAX:
            raise BadHeader("v1 line too long")
        line += await _receive_exactly(sock, 1)
    return parse_v1(bytes(line))


async def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise EOFError("closed before the end of the PROXY header")
        data += chunk
    return bytes(data)
