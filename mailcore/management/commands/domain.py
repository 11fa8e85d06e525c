"""The `domain` command: add, list and remove hosted domains."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailcore import directory
from mailcore.directory import DirectoryError
from mailcore.management.cli import confirm, write_table, yes_no


class Command(BaseCommand):
    help = "Add, list or remove hosted domains."
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", metavar="{add,list,remove}", required=True)
        add = verbs.add_parser("add", help="Host a domain (operator-added domains are verified).")
        add.add_argument("name")
        verbs.add_parser("list", help="List domains with their state and mailbox count.")
        remove = verbs.add_parser(
            "remove", help="Delete a domain with all its mailboxes, mail and aliases.",
        )
        remove.add_argument("name")
        remove.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

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


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"
