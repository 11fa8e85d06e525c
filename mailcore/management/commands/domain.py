"""The `domain` command: add, list and remove hosted domains, and show their DKIM records."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailcore import directory
from mailcore.directory import DirectoryError
from mailcore.dkim import dns_record
from mailcore.management.cli import confirm, write_table, yes_no


class Command(BaseCommand):
    help = "Add, list or remove hosted domains, or print a domain's DKIM DNS record."
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", metavar="{add,list,remove,dkim}", required=True)
        add = verbs.add_parser("add", help="Host a domain (operator-added domains are verified).")
        add.add_argument("name")
        verbs.add_parser("list", help="List domains with their state and mailbox count.")
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


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"
