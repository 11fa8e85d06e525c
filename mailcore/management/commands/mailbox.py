"""The `mailbox` command: add, list and remove mailboxes, set passwords, quotas and POP3 policy."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailcore import directory
from mailcore.directory import DirectoryError
from mailcore.management.cli import (
    PASSWORD_ON_COMMAND_LINE,
    confirm,
    format_size,
    parse_size,
    read_password,
    write_table,
    yes_no,
)
from mailcore.models import Mailbox


class Command(BaseCommand):
    help = (
        "Add, list or remove mailboxes; change a password, quota or POP3 policy. "
        "Passwords are read from stdin (--password-stdin) or prompted for, never "
        "taken as arguments."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(
            dest="verb", metavar="{add,passwd,quota,policy,list,remove}", required=True,
        )

        add = verbs.add_parser("add", help="Create a mailbox with its standard folders.")
        add.add_argument("address")
        add.add_argument("--name", default="", help="Display name, e.g. \"Ann Example\".")
        add.add_argument(
            "--quota", default=None,
            help="Storage quota such as 500M or 2G; 0 means unlimited. "
            "Defaults to the DEFAULT_QUOTA setting.",
        )
        _add_password_arguments(add)

        passwd = verbs.add_parser("passwd", help="Change a mailbox's password.")
        passwd.add_argument("address")
        _add_password_arguments(passwd)

        quota = verbs.add_parser("quota", help="Change a mailbox's quota (0 = unlimited).")
        quota.add_argument("address")
        quota.add_argument("size")

        policy = verbs.add_parser(
            "policy", help="Set what a POP3 delete does: delete the message, or keep it.",
        )
        policy.add_argument("address")
        policy.add_argument("policy", choices=Mailbox.Pop3Policy.values)

        listing = verbs.add_parser("list", help="List mailboxes.")
        listing.add_argument("--domain", help="Only this domain's mailboxes.")

        remove = verbs.add_parser("remove", help="Delete a mailbox and all its mail.")
        remove.add_argument("address")
        remove.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args: Any, verb: str, **options: Any) -> None:
        self.stdin = options.get("stdin") or sys.stdin
        if options.get("password_argument") or options.get("password_option"):
            # Say nothing of what was given: it may well be the password.
            raise CommandError(PASSWORD_ON_COMMAND_LINE)
        try:
            getattr(self, f"handle_{verb}")(**options)
        except DirectoryError as exc:
            raise CommandError(str(exc)) from exc

    def handle_add(self, address: str, name: str, quota: str | None, password_stdin: bool,
                   **options: Any) -> None:
        quota_bytes = parse_size(quota) if quota is not None else None
        # Refuse a bad address before asking for a password.
        directory.check_new_mailbox_address(address)
        password = read_password(self.stdin, from_stdin=password_stdin)
        mailbox = directory.add_mailbox(address, password, display_name=name,
                                        quota_bytes=quota_bytes)
        self.stdout.write(f"Added mailbox {mailbox.address}")

    def handle_passwd(self, address: str, password_stdin: bool, **options: Any) -> None:
        mailbox = directory.get_mailbox(address)
        directory.set_password(mailbox, read_password(self.stdin, from_stdin=password_stdin))
        self.stdout.write(f"Changed the password of {mailbox.address}")

    def handle_quota(self, address: str, size: str, **options: Any) -> None:
        quota_bytes = parse_size(size)
        mailbox = directory.get_mailbox(address)
        directory.set_quota(mailbox, quota_bytes)
        self.stdout.write(f"Quota of {mailbox.address}: {format_size(quota_bytes, 'unlimited')}")

    def handle_policy(self, address: str, policy: str, **options: Any) -> None:
        mailbox = directory.get_mailbox(address)
        directory.set_pop3_policy(mailbox, policy)
        self.stdout.write(f"POP3 policy of {mailbox.address}: {mailbox.get_pop3_policy_display()}")

    def handle_list(self, domain: str | None, **options: Any) -> None:
        scope = directory.get_domain(domain) if domain else None
        rows = [
            (m.address, m.display_name, yes_no(m.is_active), format_size(m.used_bytes),
             format_size(m.quota_bytes, "unlimited"), m.pop3_policy)
            for m in directory.list_mailboxes(scope)
        ]
        write_table(self.stdout, ("ADDRESS", "NAME", "ACTIVE", "USED", "QUOTA", "POP3"), rows,
                    empty="No mailboxes.")

    def handle_remove(self, address: str, yes: bool, **options: Any) -> None:
        mailbox = directory.get_mailbox(address)
        confirm(f"Remove {mailbox.address} and all its mail?", self.stdin, self.stdout,
                assume_yes=yes)
        directory.remove_mailbox(mailbox)
        self.stdout.write(f"Removed mailbox {mailbox.address}")


def _add_password_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--password-stdin", action="store_true",
        help="Read the password as one line from stdin instead of prompting.",
    )
    # Catch a password given as an argument, so it is refused without being echoed in
    # argparse's "unrecognized arguments" error (and so --password is not taken as an
    # abbreviation of --password-stdin).
    parser.add_argument("password_argument", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--password", dest="password_option", help=argparse.SUPPRESS)
