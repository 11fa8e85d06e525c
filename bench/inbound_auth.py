"""Delivered messages per second on port 25 with sender authentication off and on, side by side.

The same load both times: `--messages` DKIM-signed messages of `--size` bytes from
loadgen@sender.test over `--concurrency` SMTP connections to `--users` mailboxes, timed
from the first send until the last message is committed. With the checks on, mailcore runs
SPF (MAIL FROM and HELO), DKIM, ARC and DMARC for every message against a DNS server on
loopback that publishes sender.test's records (tests/dns_server.py); its answers are cached
for their TTL, as they would be from a real resolver. The target: the checks cost at most
25 % of the rate.

    python bench/inbound_auth.py --messages 2000 [--database-url postgres://...]
"""

from __future__ import annotations

import argparse
import base64
import os
import poplib
import signal
import sys
import tempfile
import time
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from load import rate, smtp_send, wait_for
from ours import mailcore

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.dns_server import DNSServer  # noqa: E402

MAX_COST = 0.25  # the checks may take at most this share of the rate
SENDER = "loadgen@sender.test"
PASSWORD = "secret"


def generate_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def public_key_b64(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def records(private_key: str) -> dict[tuple[str, str], list[str]]:
    """sender.test's SPF, DKIM and DMARC, and the load generator's HELO name's SPF."""
    key = f"v=DKIM1; k=rsa; p={public_key_b64(private_key)}"
    return {
        ("sender.test", "TXT"): ['"v=spf1 ip4:127.0.0.1 -all"'],
        ("bench._domainkey.sender.test", "TXT"): [
            " ".join(f'"{key[i:i + 200]}"' for i in range(0, len(key), 200))],
        ("_dmarc.sender.test", "TXT"): ['"v=DMARC1; p=reject"'],
        ("load.bench", "TXT"): ['"v=spf1 ip4:127.0.0.1 -all"'],
    }


def signer(private_key: str):
    def sign(message: bytes) -> bytes:
        return dkim.sign(message, b"bench", b"sender.test", private_key.encode(),
                         include_headers=[b"from", b"to", b"subject", b"message-id"],
                         canonicalize=(b"relaxed", b"relaxed")) + message
    return sign


def run(args: argparse.Namespace, checks: bool, dns: DNSServer, private_key: str) -> float:
    """Return delivered messages per second, checks on or off."""
    users = [(f"user{i}@bench.test", PASSWORD) for i in range(args.users)]
    settings = {"INBOUND_AUTH": "1" if checks else "0", "DNS_RESOLVER": dns.address,
                "INBOUND_DNS_FAILURE": "defer"}
    with (tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp,
          mailcore(tmp, users, args.database_url, settings) as server):
        def send(count: int) -> int:
            return smtp_send(server.host, server.smtp_port, [u for u, _ in users], count,
                             args.concurrency, args.size, args.timeout, SENDER,
                             signer(private_key)).sent

        warm = send(2 * args.concurrency)
        wait_for(lambda: server.delivered() >= warm, args.timeout)
        before = server.delivered()
        start = time.monotonic()
        sent = send(args.messages)
        visible = wait_for(lambda: server.delivered() >= before + sent, args.timeout, 0.02)
        elapsed = time.monotonic() - start
        delivered = server.delivered() - before
        if not visible or sent != args.messages:
            raise SystemExit(f"incomplete run (checks {'on' if checks else 'off'}): "
                             f"{sent} accepted, {delivered} delivered of {args.messages}")
        _check_results(server, users[0], checks)
        return rate(delivered, elapsed)


def _check_results(server, user: tuple[str, str], checks: bool) -> None:
    """Refuse a figure whose checks did not run (or ran when they should not have)."""
    pop = poplib.POP3(server.host, server.pop3_port, timeout=30)
    try:
        pop.user(user[0])
        pop.pass_(user[1])
        header = b"\n".join(pop.top(1, 0)[1])
    finally:
        pop.quit()
    passed = b"dkim=pass" in header and b"dmarc=pass" in header and b"spf=pass" in header
    if checks != passed:
        raise SystemExit(f"checks {'on' if checks else 'off'}, but the stored message says:\n"
                         + header.decode(errors="replace"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="messages to send")
    parser.add_argument("--concurrency", type=int, default=10, help="connections")
    parser.add_argument("--size", type=int, default=2048, help="message size, bytes")
    parser.add_argument("--users", type=int, default=10, help="mailboxes (round-robin)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per phase")
    parser.add_argument(
        "--database-url", metavar="postgres://USER@HOST:PORT/NAME",
        help="a scratch Postgres database (created, then dropped); default: SQLite")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    private_key = generate_private_key()
    load_before = os.getloadavg()[0]
    with DNSServer(records(private_key)) as dns:
        off = run(args, False, dns, private_key)
        on = run(args, True, dns, private_key)
    cost = 1 - on / off if off else 0.0
    print(f"{args.messages} DKIM-signed messages of {args.size} B, {args.concurrency} "
          f"connections, {args.users} mailboxes, 127.0.0.1; {os.cpu_count()} CPUs, load "
          f"average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"{'delivered and visible, msgs/s':<36} {'checks off':>10} {'checks on':>10} "
          f"{'cost':>6}  target <= {MAX_COST:.0%}")
    verdict = "met" if cost <= MAX_COST else "NOT met"
    print(f"{'':<36} {off:10.1f} {on:10.1f} {cost:6.0%}  {verdict}")


if __name__ == "__main__":
    main()
