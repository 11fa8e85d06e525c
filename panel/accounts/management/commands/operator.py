"""Create (or promote) an operator: a superuser whose email counts as verified."""

from __future__ import annotations

import getpass
import sys

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction


class Command(BaseCommand):
    help = ("Create an operator account for the panel, dashboard and Django admin (or make "
            "an existing account one). The email is marked verified: sign-up's email "
            "check is for customers. The password comes from --password-stdin or a prompt, "
            "which asks again until it is strong enough.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("email")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from the first line of standard input")

    def handle(self, *args, email: str, password_stdin: bool, **options) -> None:
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"not an email address: {email}") from exc
        user_model = get_user_model()
        user = user_model.objects.filter(email__iexact=email).first()
        password = self._password_from_stdin(user) if password_stdin else self._ask(user)
        with transaction.atomic():
            if user is None:
                user = user_model(username=email[:150], email=email)
            user.is_staff = user.is_superuser = user.is_active = True
            user.set_password(password)
            user.save()
            EmailAddress.objects.filter(user=user).update(primary=False)
            EmailAddress.objects.update_or_create(
                user=user, email=email.lower(), defaults={"verified": True, "primary": True})
        self.stdout.write(f"operator {email} is ready: log in at /admin/ or /dashboard/")

    def _password_from_stdin(self, user) -> str:
        """Return the first line of standard input; a weak one is an error (nobody to ask)."""
        password = sys.stdin.readline().rstrip("\n")
        problem = _problem(password, user)
        if problem:
            raise CommandError(problem)
        return password

    def _ask(self, user) -> str:
        """Ask on the terminal until the password is typed twice alike and is strong enough."""
        if not sys.stdin.isatty():
            raise CommandError("no terminal to ask for the password: use --password-stdin")
        while True:
            try:
                password = getpass.getpass("Password: ")
                again = getpass.getpass("Password (again): ")
            except (EOFError, KeyboardInterrupt):
                raise CommandError("no password given") from None
            problem = ("the passwords do not match" if password != again
                       else _problem(password, user))
            if not problem:
                return password
            self.stderr.write(f"{problem} Please try again (Ctrl-C to stop).")


def _problem(password: str, user) -> str:
    """Return why password will not do (Django's validators), or "" when it will."""
    if not password:
        return "a password is required."
    try:
        validate_password(password, user)
    except ValidationError as exc:
        return " ".join(exc.messages)
    return ""
