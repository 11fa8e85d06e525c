"""Tests for the domain, mailbox and alias management commands."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from mailcore import directory
from mailcore.directory import Route
from mailcore.models import Alias, Domain, Mailbox
from mailcore.passwords import check_password

pytestmark = pytest.mark.django_db

PROJECT_DIR = Path(__file__).resolve().parent.parent
STANDARD_FOLDERS = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}


class FakeTerminal(io.StringIO):
    """Stdin that claims to be a terminal, with the operator's typed answers."""

    def isatty(self) -> bool:
        return True


def run(*args: str, stdin: str | io.StringIO | None = None) -> str:
    """Run a command as an operator would (stdin not a terminal) and return what it printed."""
    out = io.StringIO()
    options: dict[str, object] = {"stdout": out, "stderr": io.StringIO()}
    if args[0] in {"domain", "mailbox"}:  # the commands that prompt
        options["stdin"] = stdin if isinstance(stdin, io.StringIO) else io.StringIO(stdin or "")
    call_command(*args, **options)
    return out.getvalue()


def run_manage(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run manage.py in a fresh process, on a throwaway data folder."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "panel.settings", "DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, input=stdin,
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def domain() -> Domain:
    return directory.add_domain("example.com")


@pytest.fixture
def mailbox(domain: Domain) -> Mailbox:
    return directory.add_mailbox("bob@example.com", "old-secret")


# domain -----------------------------------------------------------------------------------

def test_it_adds_a_verified_domain_in_normal_form() -> None:
    assert "Added domain example.com" in run("domain", "add", "Example.COM.")
    domain = Domain.objects.get()
    assert domain.name == "example.com"
    assert domain.is_active and domain.verified_at is not None


def test_it_lists_domains_with_state_and_mailbox_count(mailbox: Mailbox) -> None:
    directory.add_domain("empty.org", verified=False)
    lines = run("domain", "list").splitlines()
    assert lines[0].split() == ["NAME", "ACTIVE", "VERIFIED", "MAILBOXES"]
    assert lines[1].split() == ["empty.org", "yes", "no", "0"]
    assert lines[2].split() == ["example.com", "yes", "yes", "1"]


def test_it_says_so_when_there_are_no_domains() -> None:
    assert run("domain", "list").strip() == "No domains."


def test_it_refuses_an_invalid_domain_name() -> None:
    with pytest.raises(CommandError, match="invalid domain name"):
        run("domain", "add", "not a domain")
    assert not Domain.objects.exists()


def test_it_refuses_a_duplicate_domain(domain: Domain) -> None:
    with pytest.raises(CommandError, match="domain example.com already exists"):
        run("domain", "add", "EXAMPLE.com")


def test_it_refuses_to_remove_a_missing_domain() -> None:
    with pytest.raises(CommandError, match="no such domain: nowhere.org"):
        run("domain", "remove", "nowhere.org", "--yes")


def test_it_removes_a_domain_with_its_mailboxes_and_aliases(mailbox: Mailbox) -> None:
    directory.add_alias("@example.com", ["bob@example.com"])
    assert "Removed domain example.com" in run("domain", "remove", "example.com", "--yes")
    assert not Domain.objects.exists()
    assert not Mailbox.objects.exists()
    assert not Alias.objects.exists()


def test_it_refuses_to_remove_a_domain_unconfirmed_without_a_terminal(domain: Domain) -> None:
    with pytest.raises(CommandError, match="--yes"):
        run("domain", "remove", "example.com")
    assert Domain.objects.exists()


def test_it_removes_a_domain_once_confirmed_at_the_terminal(mailbox: Mailbox) -> None:
    output = run("domain", "remove", "example.com", stdin=FakeTerminal("y\n"))
    assert "Remove example.com with 1 mailbox and 0 aliases?" in output
    assert not Domain.objects.exists()


def test_it_keeps_a_domain_when_the_operator_says_no(domain: Domain) -> None:
    with pytest.raises(CommandError, match="aborted"):
        run("domain", "remove", "example.com", stdin=FakeTerminal("n\n"))
    assert Domain.objects.exists()


def test_it_exits_with_one_line_and_status_1_on_bad_input(tmp_path: Path) -> None:
    result = run_manage(tmp_path, "domain", "add", "not a domain")
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["CommandError: invalid domain name: 'not a domain'"]
    assert "Traceback" not in result.stderr


# mailbox ----------------------------------------------------------------------------------

def test_it_adds_a_mailbox_with_a_password_from_stdin_and_standard_folders(
        domain: Domain) -> None:
    output = run("mailbox", "add", "Ann@Example.com", "--password-stdin", "--name", "Ann Example",
                 stdin="correct horse\n")
    assert "Added mailbox ann@example.com" in output
    mailbox = directory.get_mailbox("ann@example.com")
    assert mailbox.display_name == "Ann Example"
    assert mailbox.quota_bytes == settings.DEFAULT_QUOTA
    assert "correct horse" not in mailbox.password_hash
    assert check_password(mailbox.address, "correct horse", mailbox.password_hash)
    assert not check_password(mailbox.address, "correct horse\n", mailbox.password_hash)
    assert set(mailbox.folders.values_list("name", flat=True)) == STANDARD_FOLDERS


@pytest.mark.parametrize(("size", "expected"), [
    ("500M", 500 * 1024**2), ("2G", 2 * 1024**3), ("1.5g", 1536 * 1024**2), ("0", 0),
    ("4096", 4096),
])
def test_it_accepts_quota_sizes(domain: Domain, size: str, expected: int) -> None:
    run("mailbox", "add", "ann@example.com", "--password-stdin", "--quota", size, stdin="pw\n")
    assert directory.get_mailbox("ann@example.com").quota_bytes == expected


def test_it_refuses_a_nonsense_quota(domain: Domain) -> None:
    with pytest.raises(CommandError, match="invalid size"):
        run("mailbox", "add", "ann@example.com", "--password-stdin", "--quota", "lots",
            stdin="pw\n")
    assert not Mailbox.objects.exists()


@pytest.mark.parametrize("args", [
    ("hunter2",), ("--password", "hunter2"), ("--password=hunter2",),
])
def test_it_refuses_a_password_on_the_command_line_without_echoing_it(
        domain: Domain, args: tuple[str, ...]) -> None:
    with pytest.raises(CommandError, match="not accepted on the command line") as excinfo:
        run("mailbox", "add", "ann@example.com", *args)
    assert "hunter2" not in str(excinfo.value)
    assert not Mailbox.objects.exists()


def test_it_refuses_a_password_argument_from_a_real_shell_too(tmp_path: Path) -> None:
    result = run_manage(tmp_path, "mailbox", "passwd", "ann@example.com", "hunter2")
    assert result.returncode == 1
    assert "not accepted on the command line" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_it_refuses_to_prompt_for_a_password_without_a_terminal(domain: Domain) -> None:
    with pytest.raises(CommandError, match="--password-stdin"):
        run("mailbox", "add", "ann@example.com")
    assert not Mailbox.objects.exists()


def test_it_refuses_an_empty_password_on_stdin(domain: Domain) -> None:
    with pytest.raises(CommandError, match="no password"):
        run("mailbox", "add", "ann@example.com", "--password-stdin", stdin="\n")


def test_it_prompts_twice_for_a_password(domain: Domain, monkeypatch) -> None:
    answers = iter(["s3cret", "s3cret"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    run("mailbox", "add", "ann@example.com", stdin=FakeTerminal())
    mailbox = directory.get_mailbox("ann@example.com")
    assert check_password(mailbox.address, "s3cret", mailbox.password_hash)


def test_it_refuses_prompted_passwords_that_differ(domain: Domain, monkeypatch) -> None:
    answers = iter(["s3cret", "s3cert"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    with pytest.raises(CommandError, match="do not match"):
        run("mailbox", "add", "ann@example.com", stdin=FakeTerminal())
    assert not Mailbox.objects.exists()


def test_it_checks_the_address_before_prompting(monkeypatch) -> None:
    monkeypatch.setattr("getpass.getpass", lambda prompt="": pytest.fail("prompted"))
    with pytest.raises(CommandError, match="no such domain: nowhere.org"):
        run("mailbox", "add", "ann@nowhere.org", stdin=FakeTerminal())


@pytest.mark.parametrize(("address", "message"), [
    ("bob@example.com", "mailbox bob@example.com already exists"),
    ("ann@nowhere.org", "no such domain"),
    ("no-at-sign", "not an address"),
])
def test_it_refuses_a_bad_new_mailbox_address(mailbox: Mailbox, address: str,
                                               message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("mailbox", "add", address, "--password-stdin", stdin="pw\n")


def test_it_changes_a_password(mailbox: Mailbox) -> None:
    output = run("mailbox", "passwd", "BOB@example.com", "--password-stdin", stdin="new-secret\n")
    assert "Changed the password of bob@example.com" in output
    mailbox.refresh_from_db()
    assert check_password(mailbox.address, "new-secret", mailbox.password_hash)
    assert not check_password(mailbox.address, "old-secret", mailbox.password_hash)


def test_it_refuses_to_change_the_password_of_a_missing_mailbox(domain: Domain) -> None:
    with pytest.raises(CommandError, match="no such mailbox: ann@example.com"):
        run("mailbox", "passwd", "ann@example.com", "--password-stdin", stdin="pw\n")


def test_it_sets_the_pop3_policy(mailbox: Mailbox) -> None:
    run("mailbox", "policy", "bob@example.com", "keep")
    mailbox.refresh_from_db()
    assert mailbox.pop3_policy == Mailbox.Pop3Policy.KEEP
    run("mailbox", "policy", "bob@example.com", "delete")
    mailbox.refresh_from_db()
    assert mailbox.pop3_policy == Mailbox.Pop3Policy.DELETE


def test_it_refuses_an_unknown_pop3_policy(mailbox: Mailbox) -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        run("mailbox", "policy", "bob@example.com", "shred")


def test_it_changes_a_quota(mailbox: Mailbox) -> None:
    assert "unlimited" in run("mailbox", "quota", "bob@example.com", "0")
    mailbox.refresh_from_db()
    assert mailbox.quota_bytes == 0


def test_it_lists_mailboxes_optionally_for_one_domain(mailbox: Mailbox) -> None:
    directory.add_domain("other.org")
    directory.add_mailbox("zed@other.org", "pw", display_name="Zed", quota_bytes=0)
    lines = run("mailbox", "list").splitlines()
    assert lines[0].split() == ["ADDRESS", "NAME", "ACTIVE", "USED", "QUOTA", "POP3"]
    assert [line.split()[0] for line in lines[1:]] == ["bob@example.com", "zed@other.org"]
    assert lines[2].split() == ["zed@other.org", "Zed", "yes", "0", "unlimited", "delete"]
    only = run("mailbox", "list", "--domain", "other.org").splitlines()
    assert [line.split()[0] for line in only[1:]] == ["zed@other.org"]


def test_it_refuses_to_list_the_mailboxes_of_a_missing_domain() -> None:
    with pytest.raises(CommandError, match="no such domain"):
        run("mailbox", "list", "--domain", "nowhere.org")


def test_it_removes_a_mailbox_with_its_folders(mailbox: Mailbox) -> None:
    assert "Removed mailbox bob@example.com" in run("mailbox", "remove", "bob@example.com",
                                                    "--yes")
    assert not Mailbox.objects.exists()
    assert Domain.objects.exists()


def test_it_refuses_to_remove_a_mailbox_unconfirmed_without_a_terminal(mailbox: Mailbox) -> None:
    with pytest.raises(CommandError, match="--yes"):
        run("mailbox", "remove", "bob@example.com")
    assert Mailbox.objects.exists()


def test_it_refuses_to_remove_a_missing_mailbox(domain: Domain) -> None:
    with pytest.raises(CommandError, match="no such mailbox"):
        run("mailbox", "remove", "ann@example.com", "--yes")


# alias ------------------------------------------------------------------------------------

def test_it_adds_an_alias_that_routes_to_a_mailbox(mailbox: Mailbox) -> None:
    assert "Added alias info@example.com -> bob@example.com" in run(
        "alias", "add", "Info@example.com", "bob@example.com")
    assert directory.resolve("info@example.com").mailbox_ids == {mailbox.pk}


def test_it_adds_an_alias_to_a_remote_address(mailbox: Mailbox) -> None:
    run("alias", "add", "info@example.com", "bob@example.com", "Someone@Elsewhere.org")
    assert directory.get_alias("info@example.com").destinations == [
        "bob@example.com", "someone@elsewhere.org"]
    resolution = directory.resolve("info@example.com")
    assert resolution.mailbox_ids == {mailbox.pk}
    assert resolution.remote == {"someone@elsewhere.org"}


def test_it_adds_a_catch_all(mailbox: Mailbox) -> None:
    assert "Added catch-all @example.com" in run("alias", "add", "@example.com", "bob@example.com")
    assert directory.get_alias("@example.com").is_catch_all
    resolution = directory.resolve("anything@example.com")
    assert resolution.route is Route.LOCAL
    assert resolution.mailbox_ids == {mailbox.pk}


@pytest.mark.parametrize(("args", "message"), [
    (("info@nowhere.org", "bob@example.com"), "no such domain"),
    (("@nowhere.org", "bob@example.com"), "no such domain"),
    (("info@example.com", "not an address"), "not an address"),
])
def test_it_refuses_a_bad_alias(domain: Domain, args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("alias", "add", *args)
    assert not Alias.objects.exists()


def test_it_refuses_a_duplicate_alias(mailbox: Mailbox) -> None:
    run("alias", "add", "@example.com", "bob@example.com")
    with pytest.raises(CommandError, match="already exists"):
        run("alias", "add", "@example.com", "bob@example.com")


def test_it_lists_aliases_with_catch_alls(mailbox: Mailbox) -> None:
    run("alias", "add", "@example.com", "bob@example.com")
    run("alias", "add", "info@example.com", "bob@example.com", "x@elsewhere.org")
    lines = run("alias", "list", "--domain", "example.com").splitlines()
    assert lines[0].split() == ["ADDRESS", "ACTIVE", "DESTINATIONS"]
    assert lines[1].split() == ["@example.com", "yes", "bob@example.com"]
    assert lines[2].split() == ["info@example.com", "yes", "bob@example.com,", "x@elsewhere.org"]


def test_it_removes_an_alias_and_a_catch_all(mailbox: Mailbox) -> None:
    run("alias", "add", "@example.com", "bob@example.com")
    run("alias", "add", "info@example.com", "bob@example.com")
    assert "Removed alias info@example.com" in run("alias", "remove", "info@example.com")
    assert "Removed catch-all @example.com" in run("alias", "remove", "@example.com")
    assert not Alias.objects.exists()
    assert directory.resolve("info@example.com").route is Route.UNKNOWN_USER


def test_it_refuses_to_remove_a_missing_alias(domain: Domain) -> None:
    with pytest.raises(CommandError, match="no such alias"):
        run("alias", "remove", "info@example.com")


# domain verify: a customer's claim proven by the operator ------------------------------------

def _customer(name: str):
    from django.contrib.auth import get_user_model
    return get_user_model().objects.create_user(name, f"{name}@customers.test", "x")


def test_it_verifies_a_pending_claim_and_ends_the_others(
        mailoutbox, django_capture_on_commit_callbacks) -> None:
    alice, bob = _customer("alice"), _customer("bob")
    mine = directory.add_domain("claimed.test", owner=alice, verified=False)
    directory.add_domain("claimed.test", owner=bob, verified=False)
    with django_capture_on_commit_callbacks(execute=True):
        out = run("domain", "verify", "Claimed.test", "--owner", "ALICE@customers.test")
    assert "Verified claimed.test for alice@customers.test" in out
    mine.refresh_from_db()
    assert mine.verified_at is not None
    assert list(Domain.objects.filter(name="claimed.test")) == [mine]
    assert [m.to for m in mailoutbox] == [["bob@customers.test"]]
    assert directory.resolve("anyone@claimed.test").route is Route.UNKNOWN_USER


def test_it_verifies_the_only_claim_without_naming_its_owner() -> None:
    claim = directory.add_domain("claimed.test", owner=_customer("alice"), verified=False)
    run("domain", "verify", "claimed.test")
    claim.refresh_from_db()
    assert claim.verified_at is not None
    assert "was verified already" in run("domain", "verify", "claimed.test")


def test_it_asks_which_claim_when_several_customers_claim_the_name() -> None:
    directory.add_domain("claimed.test", owner=_customer("alice"), verified=False)
    directory.add_domain("claimed.test", owner=_customer("bob"), verified=False)
    with pytest.raises(CommandError, match="alice@customers.test, bob@customers.test"):
        run("domain", "verify", "claimed.test")
    assert not Domain.objects.verified().exists()


def test_it_refuses_to_verify_a_name_nobody_claims() -> None:
    with pytest.raises(CommandError, match="no pending claim on nobody.test"):
        run("domain", "verify", "nobody.test")
    with pytest.raises(CommandError):
        run("domain", "verify", "not a name")


def test_it_refuses_a_claim_while_another_account_holds_the_name(domain: Domain) -> None:
    claim = directory.add_domain("example.com", owner=_customer("alice"), verified=False)
    with pytest.raises(CommandError, match="verified for another account"):
        run("domain", "verify", "example.com", "--owner", "alice@customers.test")
    claim.refresh_from_db()
    assert claim.verified_at is None
