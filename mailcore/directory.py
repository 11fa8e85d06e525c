"""The directory service: hosted domains, mailboxes, aliases, recipient routing and logins."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from mailcore import claims, passwords, ratelimit, srs
from mailcore.addresses import AddressError, normalize_address, normalize_domain, split_address
from mailcore.dkim import generate_private_key
from mailcore.models import Alias, AppPassword, Domain, Mailbox
from mailcore.principal import Principal
from mailcore.store import sql
from mailcore.store.folders import create_default_folders

MAX_ALIAS_DEPTH = 10


class DirectoryError(ValueError):
    """An operator's or customer's request the directory refuses, with a message for them."""


# Routing ----------------------------------------------------------------------------------

class Route(Enum):
    LOCAL = "local"            # delivers to one or more local mailboxes and/or remote forwards
    UNKNOWN_USER = "unknown"   # hosted domain, nobody by that name
    NOT_HOSTED = "relay"       # not our domain: relaying is refused
    OVER_QUOTA = "quota"       # every local mailbox it reaches is full
    INVALID = "invalid"        # not an address


@dataclass
class Resolution:
    route: Route
    mailbox_ids: set[int] = field(default_factory=set)
    remote: set[str] = field(default_factory=set)


def _is_hosted(domain: str) -> bool:
    return Domain.objects.receiving().filter(name=domain).exists()


# Hand-written (mailcore.store.sql): the recipient check runs for every RCPT, and one
# statement instead of three ORM queries measurably raises delivered messages per second
# (bench/). Domain.objects.receiving() and Alias.objects.matching() say the same in the ORM.
@sql.statements
def _route_sql() -> str:
    return sql.render("""
        SELECT m.{mailbox.id}, m.{mailbox.is_active}, m.{mailbox.quota_bytes},
               m.{mailbox.used_bytes},
               EXISTS (SELECT 1 FROM {alias} a WHERE a.{alias.domain_id} = d.{domain.id}
                       AND a.{alias.is_active} AND a.{alias.local_part} = %s),
               EXISTS (SELECT 1 FROM {alias} a WHERE a.{alias.domain_id} = d.{domain.id}
                       AND a.{alias.is_active} AND a.{alias.local_part} = '')
        FROM {domain} d
        LEFT JOIN {mailbox} m ON m.{mailbox.domain_id} = d.{domain.id}
                             AND m.{mailbox.local_part} = %s
        WHERE d.{domain.name} = %s AND d.{domain.is_active} AND d.{domain.verified_at} IS NOT NULL
    """, domain=Domain, mailbox=Mailbox, alias=Alias)


def _quick_route(local: str, domain: str) -> Resolution | None:
    """Answer the common cases in one query; None when aliases need the full expansion."""
    with connection.cursor() as cursor:
        cursor.execute(_route_sql(), [local, local, domain])
        row = cursor.fetchone()
    if row is None:
        return Resolution(Route.NOT_HOSTED)
    mailbox_id, active, quota, used, exact_alias, catch_all = row
    if exact_alias:
        return None
    if mailbox_id is not None and active:
        if quota and used >= quota:
            return Resolution(Route.OVER_QUOTA)
        return Resolution(Route.LOCAL, {mailbox_id})
    return None if catch_all else Resolution(Route.UNKNOWN_USER)


def resolve(address: str) -> Resolution:
    """Resolve a recipient address through aliases and catch-alls to mailboxes and forwards."""
    bare = address.strip().removeprefix("<").removesuffix(">")
    if srs.looks_like(bare):  # before the usual checks: SRS local parts may be long
        local, _, domain = bare.rpartition("@")
        try:
            domain = normalize_domain(domain)
        except AddressError:
            return Resolution(Route.INVALID)
        if domain == settings.SRS_DOMAIN or _is_hosted(domain):
            return _resolve_srs(f"{local}@{domain}")
    try:
        local, domain = split_address(address)
    except AddressError:
        return Resolution(Route.INVALID)
    quick = _quick_route(local, domain)
    if quick is not None:
        return quick
    result = Resolution(Route.LOCAL)
    full: list[int] = []
    _expand(local, domain, result, full, seen=set(), depth=0)
    if not result.mailbox_ids and not result.remote:
        result.route = Route.OVER_QUOTA if full else Route.UNKNOWN_USER
    return result


def _resolve_srs(address: str) -> Resolution:
    """Resolve an SRS address of ours to the original sender it stands for (a bounce of a
    forwarded message goes back there); a forged or expired one is nobody here."""
    original = srs.reverse(address)
    if original is None:
        return Resolution(Route.UNKNOWN_USER)
    try:
        local, domain = split_address(original)
    except AddressError:
        return Resolution(Route.UNKNOWN_USER)
    if srs.looks_like(local) or not _is_hosted(domain):  # an SRS1's first hop, or away
        return Resolution(Route.LOCAL, remote={f"{local}@{domain}"})
    return resolve(original)  # one of ours: no SRS form, so no second round


def _expand(local: str, domain: str, result: Resolution, full: list[int],
            seen: set[str], depth: int) -> None:
    address = f"{local}@{domain}"
    if depth > MAX_ALIAS_DEPTH:
        return
    revisit = address in seen
    seen.add(address)
    if not revisit:
        aliases = list(Alias.objects.matching(local, domain))
        exact = next((a for a in aliases if a.local_part == local), None)
        if exact is not None:
            _expand_destinations(exact, result, full, seen, depth)
            return
    # The verified domain's mailbox: a pending claim on the same name never takes mail.
    mailbox = (Mailbox.objects.filter(local_part=local, domain__name=domain, is_active=True,
                                      domain__verified_at__isnull=False)
               .only("pk", "quota_bytes", "used_bytes").first())
    if mailbox is not None:
        if mailbox.is_full():
            full.append(mailbox.pk)
        else:
            result.mailbox_ids.add(mailbox.pk)
        return
    if not revisit:
        catch_all = next((a for a in aliases if a.is_catch_all), None)
        if catch_all is not None:
            _expand_destinations(catch_all, result, full, seen, depth)


def _expand_destinations(alias: Alias, result: Resolution, full: list[int],
                         seen: set[str], depth: int) -> None:
    for destination in alias.destinations:
        try:
            local, domain = split_address(destination)
        except AddressError:
            continue
        if _is_hosted(domain):
            _expand(local, domain, result, full, seen, depth + 1)
        else:
            result.remote.add(f"{local}@{domain}")


def alias_reaches(alias: Alias, address: str, mailbox_id: int) -> bool:
    """Return whether the alias (at address) delivers to this mailbox, full or not."""
    result = Resolution(Route.LOCAL)
    full: list[int] = []
    _expand_destinations(alias, result, full, seen={address}, depth=0)
    return mailbox_id in result.mailbox_ids or mailbox_id in full


# Logins -----------------------------------------------------------------------------------

def quarantines_dmarc_rejects(domain_names: set[str]) -> bool:
    """Return whether any of these hosted domains files mail that its sender's DMARC
    policy rejects in Junk instead of refusing it (Domain.dmarc_reject)."""
    return (Domain.objects.receiving().filter(name__in=domain_names)
            .exclude(dmarc_reject=Domain.DmarcReject.FOLLOW).exists())


class LoginRefused(Exception):
    """Bad credentials, a disabled mailbox, or a source address that failed too often.

    delay is what the session should make the client wait before it answers (it grows
    with repeated failures); retry_after, when rate limited, is when the address may
    try again; busy, that it was not refused but has as many checks running as it may
    have failures, and may try again as soon as one ends.
    """

    def __init__(self, rate_limited: bool = False, delay: float | None = None,
                 retry_after: int = 0, busy: bool = False) -> None:
        super().__init__("rate limited" if rate_limited else "bad credentials")
        self.rate_limited = rate_limited
        self.delay = settings.AUTH_FAILURE_DELAY if delay is None else delay
        self.retry_after = retry_after
        self.busy = busy


def plaintext_allowed(secure: bool, peer_ip: str) -> bool:
    """Return whether a password may be sent on this connection (RFC 2595 section 2.2)."""
    if secure or settings.PLAINTEXT_AUTH == "always":
        return True
    if settings.PLAINTEXT_AUTH == "loopback":
        try:
            return ipaddress.ip_address(peer_ip).is_loopback
        except ValueError:
            return False
    return False


def log_in(user: str, password: str, peer_ip: str) -> Principal:
    """Return the principal these credentials open, or raise LoginRefused.

    Checked under the login throttle (mailcore.ratelimit).
    A refused source address gets no password check at all. Otherwise exactly one
    argon2 verification runs whether the address exists or not (a dummy hash for an
    unknown one, as Django's ModelBackend), so timing tells nothing about which exist.
    Only mailboxes of verified domains log in: a pending claim's address may be held by
    several customers at once, and no mail can reach it anyway (by_address looks no
    further than the verified domain).
    """
    try:
        attempt = ratelimit.begin(user, peer_ip)
    except ratelimit.Refused as refused:
        raise LoginRefused(rate_limited=True, delay=ratelimit.delay_for(
            settings.AUTH_MAX_FAILURES), retry_after=refused.retry_after,
            busy=refused.busy) from None
    try:
        mailbox = None
        try:
            mailbox = (Mailbox.objects.by_address(normalize_address(user))
                       .filter(is_active=True, domain__is_active=True)
                       .select_related("domain").first())
        except AddressError:
            pass
        if mailbox is None:
            passwords.check_nothing(password)
            matched = None
        else:
            matched = _password_matches(mailbox, password)
    except BaseException:
        attempt.abandon()
        raise
    if mailbox is None or matched is None:
        raise LoginRefused(delay=attempt.failed())
    attempt.succeeded()
    return Principal.of(mailbox, *matched)


def _password_matches(mailbox: Mailbox, password: str) -> tuple[str, int] | None:
    """Return which credential the password is (noting an app password's use), if any.

    An app password is found by its lookup column, so only that row is verified: a
    wrong password costs one argon2 run however many app passwords the mailbox has.
    Rows from before the column (empty lookup) are still tried one by one, and get their
    lookup on their next successful use. A hash made with other argon2 parameters than
    today's is replaced on success.
    """
    lookup = passwords.app_password_lookup(password)
    apps = AppPassword.objects.for_mailbox(mailbox).only("pk", "password_hash", "last_used_at",
                                                         "lookup")
    app = apps.filter(lookup=lookup).first()
    if app is not None and _app_matches(mailbox, app, password):
        return "app", app.pk
    if passwords.check_password(mailbox.address, password, mailbox.password_hash):
        if passwords.needs_rehash(mailbox.password_hash):
            new_hash = passwords.make_password(password)
            # Only if unchanged meanwhile: a password change made in between wins.
            if Mailbox.objects.filter(pk=mailbox.pk, password_hash=mailbox.password_hash
                                      ).update(password_hash=new_hash):
                mailbox.password_hash = new_hash
        return "password", mailbox.pk
    for app in apps.filter(lookup=""):
        if _app_matches(mailbox, app, password):
            return "app", app.pk
    return None


def _app_matches(mailbox: Mailbox, app: AppPassword, password: str) -> bool:
    if not passwords.check_password(f"{mailbox.address}#{app.pk}", password, app.password_hash):
        return False
    changes: dict[str, object] = {}
    now = timezone.now()
    if app.last_used_at is None or (now - app.last_used_at).total_seconds() > 60:
        changes["last_used_at"] = now
    if not app.lookup:
        changes["lookup"] = passwords.app_password_lookup(password)
    if passwords.needs_rehash(app.password_hash):
        changes["password_hash"] = passwords.make_password(password)
    if changes:
        AppPassword.objects.filter(pk=app.pk, password_hash=app.password_hash).update(**changes)
    return True


# Operator and customer changes ---------------------------------------------------------------

def add_domain(name: str, owner=None, verified: bool = True) -> Domain:
    """Add a hosted domain; an operator's is verified at once, a customer's is a claim.

    An operator's ends every pending claim on the name (mailboxes and aliases deleted,
    owners told). A customer's claim is accepted whoever else claims or holds the name,
    and answered the same way, so the answer never tells who does (mailcore.claims).
    """
    try:
        name = normalize_domain(name)
    except AddressError as exc:
        raise DirectoryError(str(exc)) from exc
    exists = DirectoryError(f"domain {name} already exists")
    if verified:
        taken = Domain.objects.verified().filter(name=name)
    else:
        # Only this owner's own rows: another account's claim or domain is not said.
        taken = Domain.objects.filter(name=name, owner=owner) if owner is not None \
            else Domain.objects.pending().filter(name=name, owner__isnull=True)
    if taken.exists():
        raise exists
    key = generate_private_key()  # slow: made before the transaction takes any lock
    try:
        with transaction.atomic():
            domain = Domain.objects.create(
                name=name, owner=owner, verified_at=timezone.now() if verified else None,
                dkim_private_key=key,
            )
            if verified:
                claims.end_pending(name, claims.ADDED_BY_OPERATOR, keep=domain)
    except IntegrityError as exc:  # the same name added at the same moment
        raise exists from exc
    return domain


def get_domain(name: str) -> Domain:
    """Return the verified domain of this name (pending claims are never found by name)."""
    try:
        return Domain.objects.verified().get(name=normalize_domain(name))
    except (AddressError, Domain.DoesNotExist) as exc:
        raise DirectoryError(f"no such domain: {name}") from exc


def _parse_new_address(address: str, domain: Domain | None = None) -> tuple[str, Domain]:
    try:
        local, domain_name = split_address(address)
    except AddressError as exc:
        raise DirectoryError(str(exc)) from exc
    if domain is None:
        domain = get_domain(domain_name)
    elif domain.name != domain_name:
        raise DirectoryError(f"{address} is not in {domain.name}")
    if (Mailbox.objects.filter(domain=domain, local_part=local).exists()):
        raise DirectoryError(f"mailbox {local}@{domain_name} already exists")
    return local, domain


@transaction.atomic
def add_mailbox(address: str, password: str, display_name: str = "",
                quota_bytes: int | None = None, domain: Domain | None = None) -> Mailbox:
    """Create a mailbox with its standard folders.

    Give domain for a pending claim (its name alone finds only the verified domain).
    """
    local, domain = _parse_new_address(address, domain)
    if not password:
        raise DirectoryError("a password is required")
    mailbox = Mailbox.objects.create(
        domain=domain, local_part=local, display_name=display_name,
        password_hash=passwords.make_password(password),
        quota_bytes=settings.DEFAULT_QUOTA if quota_bytes is None else quota_bytes,
    )
    create_default_folders(mailbox)
    return mailbox


def get_mailbox(address: str) -> Mailbox:
    try:
        return Mailbox.objects.by_address(normalize_address(address)).select_related("domain").get()
    except (AddressError, Mailbox.DoesNotExist) as exc:
        raise DirectoryError(f"no such mailbox: {address}") from exc


def add_app_password(mailbox: Mailbox, name: str) -> tuple[AppPassword, str]:
    """Create a named app password; return it and the password, which is shown only once."""
    name = name.strip()
    if not name:
        raise DirectoryError("an app password needs a name")
    if AppPassword.objects.for_mailbox(mailbox).count() >= 20:
        raise DirectoryError("a mailbox can have at most 20 app passwords")
    secret = passwords.generate_app_password()
    app = AppPassword.objects.create(mailbox=mailbox, name=name,
                                     password_hash=passwords.make_password(secret),
                                     lookup=passwords.app_password_lookup(secret))
    return app, secret


def set_password(mailbox: Mailbox, password: str) -> None:
    if not password:
        raise DirectoryError("a password is required")
    mailbox.password_hash = passwords.make_password(password)
    mailbox.save(update_fields=["password_hash"])


def _parse_alias_address(address: str, domain: Domain | None = None) -> tuple[str, Domain]:
    address = address.strip()
    if address.startswith("@"):
        local, domain_name = "", address[1:]
    else:
        try:
            local, domain_name = split_address(address)
        except AddressError as exc:
            raise DirectoryError(str(exc)) from exc
    if domain is None:
        return local, get_domain(domain_name)
    if domain.name != domain_name.strip().lower():
        raise DirectoryError(f"{address} is not in {domain.name}")
    return local, domain


def add_alias(address: str, destinations: list[str], domain: Domain | None = None) -> Alias:
    """Create an alias (or, for '@domain', the domain's catch-all) delivering to destinations.

    Give domain for a pending claim (its name alone finds only the verified domain).
    """
    local, domain = _parse_alias_address(address, domain)
    if not destinations:
        raise DirectoryError("an alias needs at least one destination")
    try:
        cleaned = [normalize_address(d) for d in destinations]
    except AddressError as exc:
        raise DirectoryError(str(exc)) from exc
    if Alias.objects.filter(domain=domain, local_part=local).exists():
        raise DirectoryError(f"alias {local}@{domain.name} already exists")
    return Alias.objects.create(domain=domain, local_part=local, destinations=cleaned)


def get_alias(address: str) -> Alias:
    local, domain = _parse_alias_address(address)
    try:
        return Alias.objects.get(domain=domain, local_part=local)
    except Alias.DoesNotExist as exc:
        raise DirectoryError(f"no such alias: {address}") from exc


def list_domains() -> QuerySet[Domain]:
    """Return every domain, annotated with its mailbox_count."""
    return Domain.objects.annotate(mailbox_count=Count("mailboxes")).order_by("name")


@transaction.atomic
def remove_domain(domain: Domain) -> None:
    """Delete a domain with its mailboxes, their mail and its aliases; blobs are collected later."""
    domain.delete()


def list_mailboxes(domain: Domain | None = None) -> QuerySet[Mailbox]:
    """Return the mailboxes of one domain, or of every domain."""
    mailboxes = Mailbox.objects.select_related("domain")
    return mailboxes.for_domain(domain) if domain is not None else mailboxes.all()


@transaction.atomic
def remove_mailbox(mailbox: Mailbox) -> None:
    """Delete a mailbox with its folders and mail; blobs are collected later."""
    mailbox.delete()


def set_quota(mailbox: Mailbox, quota_bytes: int) -> None:
    if quota_bytes < 0:
        raise DirectoryError("a quota cannot be negative")
    mailbox.quota_bytes = quota_bytes
    mailbox.save(update_fields=["quota_bytes"])


def set_pop3_policy(mailbox: Mailbox, policy: str) -> None:
    """Set what a POP3 DELE does to this mailbox: 'delete' or 'keep'."""
    if policy not in Mailbox.Pop3Policy.values:
        choices = ", ".join(Mailbox.Pop3Policy.values)
        raise DirectoryError(f"unknown POP3 policy {policy!r} (choose {choices})")
    mailbox.pop3_policy = policy
    mailbox.save(update_fields=["pop3_policy"])


def set_alias_destinations(alias: Alias, destinations: list[str]) -> None:
    if not destinations:
        raise DirectoryError("an alias needs at least one destination")
    try:
        alias.destinations = [normalize_address(d) for d in destinations]
    except AddressError as exc:
        raise DirectoryError(str(exc)) from exc
    alias.save(update_fields=["destinations"])


def list_aliases(domain: Domain | None = None) -> QuerySet[Alias]:
    """Return the aliases (catch-alls included) of one domain, or of every domain."""
    aliases = Alias.objects.select_related("domain")
    return aliases.for_domain(domain) if domain is not None else aliases.all()


def remove_alias(alias: Alias) -> None:
    alias.delete()


def check_new_mailbox_address(address: str, domain: Domain | None = None) -> None:
    """Raise DirectoryError unless a mailbox can be added at this address."""
    _parse_new_address(address, domain)
