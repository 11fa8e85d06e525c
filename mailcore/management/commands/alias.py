"""The `alias` command: add, list and remove aliases and catch-alls (`@domain`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailcore import directory
from mailcore.directory import DirectoryError
from mailcore.management.cli import write_table, yes_no
from mailcore.models import Alias


class Command(BaseCommand):
    help = (
        "Add, list or remove aliases. An alias delivers to local mailboxes and/or remote "
        "addresses; '@example.com' is the domain's catch-all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", metavar="{add,list,remove}", required=True)
        add = verbs.add_parser("add", help="Create an alias delivering to the destinations.")
        add.add_argument("address", help="name@example.com, or @example.com for a catch-all.")
        add.add_argument("destinations", nargs="+", metavar="destination")
        listing = verbs.add_parser("list", help="List aliases.")
        listing.add_argument("--domain", help="Only this domain's aliases.")
        remove = verbs.add_parser("remove", help="Delete an alias.")
        remove.add_argument("address")

    def handle(self, *args: Any, verb: str, **options: Any) -> None:
        try:
            getattr(self, f"handle_{verb}")(**options)
        except DirectoryError as exc:
            raise CommandError(str(exc)) from exc

    def handle_add(self, address: str, destinations: list[str], **options: Any) -> None:
        alias = directory.add_alias(address, destinations)
        self.stdout.write(f"Added {_describe(alias)} -> {', '.join(alias.destinations)}")

    def handle_list(self, domain: str | None, **options: Any) -> None:
        scope = directory.get_domain(domain) if domain else None
        rows = [
            (_address(a), yes_no(a.is_active), ", ".join(a.destinations))
            for a in directory.list_aliases(scope)
        ]
        write_table(self.stdout, ("ADDRESS", "ACTIVE", "DESTINATIONS"), rows, empty="No aliases.")

    def handle_remove(self, address: str, **options: Any) -> None:
        alias = directory.get_alias(address)
        directory.remove_alias(alias)
        self.stdout.write(f"Removed {_describe(alias)}")


def _address(alias: Alias) -> str:
    return f"@{alias.domain.name}" if alias.is_catch_all else alias.address


def _describe(alias: Alias) -> str:
    kind = "catch-all" if alias.is_catch_all else "alias"
    return f"{kind} {_address(alias)}"
