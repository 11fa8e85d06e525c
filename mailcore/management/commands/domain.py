"""The `domain` command: add, list, verify and remove hosted domains, and show DKIM records."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailcore import claims, directory
from mailcore.addresses import AddressError, normalize_domain
from mailcore.directory import DirectoryError
from mailcore.dkim import dns_record
from mailcore.management.cli import confirm, write_table, yes_no
from mailcore.models import Domain


class Command(BaseCommand):
    help = ("Add, list, verify or remove hosted domains, or print a domain's DKIM DNS "
            "record.")
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", metavar="{add,list,verify,remove,dkim}",
                                      required=True)
        add = verbs.add_parser("add", help="Host a domain (operator-added domains are verified).")
        add.add_argument("name")
        verbs.add_parser("list", help="List domains with their state and mailbox count.")
        verify = verbs.add_parser(
            "verify", help="Mark a customer's pending claim verified, as its DNS proof would "
            "(the other claims on the name end; their owners are told).",
        )
        verify.add_argument("name")
        verify.add_argument("--owner", metavar="EMAIL",
                            help="whose claim, when several customers claim the name")
        remove = verbs.add_parser(
            "remove", help="Delete a domain with all its mailboxes, mail and aliases.",
        )
        remove.add_argument("name")
        remove.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        dkim = verbs.add_parser(
            "dkim", help="Print the DNS TXT record that publishes the domain's DKIM key.",
        )
        dkim.add_argument("name")

    def handle(self, *args: Any, verb: str, **options: Any) -> None:
        self.stdin = options.get("stdin") or sys.stdin
        try:
            getattr(self, f"handle_{verb}")(**options)
        except DirectoryError as exc:
            raise CommandError(str(exc)) from exc

    def handle_add(self, name: str, **options: Any) -> None:
        domain = directory.add_domain(name)
        self.stdout.write(f"Added domain {domain.name}")

    def handle_list(self, **options: Any) -> None:
        rows = [
            (d.name, yes_no(d.is_active), yes_no(d.verified_at is not None), d.mailbox_count)
            for d in directory.list_domains()
        ]
        write_table(self.stdout, ("NAME", "ACTIVE", "VERIFIED", "MAILBOXES"), rows,
                    empty="No domains.")

    def handle_verify(self, name: str, owner: str | None, **options: Any) -> None:
        claim = _claim(name, owner)
        try:
            verified = claims.prove(claim)
        except claims.ClaimRefused as exc:
            raise CommandError(f"{claim.name} was not verified: it is verified for another "
                               "account already, or the claim has ended") from exc
        whose = _owner_name(claim)
        if verified:
            self.stdout.write(f"Verified {claim.name} for {whose}: it receives and sends mail")
        else:
            self.stdout.write(f"{claim.name} was verified already")

    def handle_remove(self, name: str, yes: bool, **options: Any) -> None:
        domain = directory.get_domain(name)
        mailboxes = domain.mailboxes.count()
        aliases = domain.aliases.count()
        confirm(
            f"Remove {domain.name} with {_plural(mailboxes, 'mailbox', 'mailboxes')} "
            f"and {_plural(aliases, 'alias', 'aliases')}? All their mail will be deleted.",
            self.stdin, self.stdout, assume_yes=yes,
        )
        directory.remove_domain(domain)
        self.stdout.write(f"Removed domain {domain.name}")

    def handle_dkim(self, name: str, **options: Any) -> None:
        domain = directory.get_domain(name)
        if not domain.dkim_private_key:
            raise CommandError(f"{domain.name} has no DKIM key; its mail is sent unsigned")
        record, value = dns_record(domain)
        self.stdout.write(f"Publish this TXT record in the DNS zone of {domain.name}:\n")
        self.stdout.write(f"Name:  {record}")
        self.stdout.write("Type:  TXT")
        self.stdout.write(f"Value: {value}")
        self.stdout.write("\nAs a zone file line (strings of at most 255 characters, "
                          "RFC 1035 section 3.3.14):\n")
        self.stdout.write(f"{record}. IN TXT {zone_strings(value)}")


def zone_strings(value: str, size: int = 255) -> str:
    """Return value as quoted DNS character-strings of at most size characters each."""
    chunks = [value[i:i + size] for i in range(0, len(value), size)] or [""]
    quoted = " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"'
                      for c in chunks)
    return f"( {quoted} )" if len(chunks) > 1 else quoted


def _claim(name: str, owner: str | None) -> Domain:
    """Return the claim on name to verify: the only pending one, or owner's."""
    try:
        name = normalize_domain(name)
    except AddressError as exc:
        raise CommandError(str(exc)) from exc
    verified = Domain.objects.verified().filter(name=name).select_related("owner").first()
    pending = list(Domain.objects.pending().filter(name=name).select_related("owner"))
    if owner:
        pending = [c for c in pending if c.owner and c.owner.email.lower() == owner.lower()]
    if len(pending) == 1:
        return pending[0]
    if not pending and verified is not None and not owner:
        return verified  # prove() says it is verified already
    if not pending:
        raise CommandError(f"no pending claim on {name}" + (f" by {owner}" if owner else ""))
    owners = ", ".join(sorted(_owner_name(c) for c in pending))
    raise CommandError(f"{len(pending)} customers claim {name} ({owners}): "
                       "choose one with --owner EMAIL")


def _owner_name(domain: Domain) -> str:
    if domain.owner is None:
        return "the operator"
    return domain.owner.email or domain.owner.username


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"
