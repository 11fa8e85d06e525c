"""Hostile input to every page of webmail and the panel: a form error or a 4xx, never a 500.

The walk resolves every URL pattern of the panel's own apps (customers, dashboard,
webmail, the client-configuration URLs) with real ids of the owner's objects, and sends
each one, by GET and by POST, hostile values in every query parameter and form field the
view reads. Those names are kept in FIELDS below, read off the views and their forms (a
form's fields are taken from the form class itself, so a new field is walked without
editing the table); a URL missing from the table fails the walk. Another tenant gets 404
for every URL that names an object, and never the owner's data. Any 500, and any ERROR
logged while it runs, fails the test. django-allauth's pages and the Django admin are
third-party code and are not walked.

Run it on Postgres too: that is where NUL characters and integers beyond 64 bits fail.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from django import forms as django_forms
from django.core import signing
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from mailcore import directory, selfservice
from mailcore.models import Alias, AppPassword, Domain, Folder, Mailbox
from mailcore.sending import devoutbox
from mailcore.store import messages as store_messages
from mailcore.store.folders import add_folder
from mailcore.webclient import reading, sender_lists
from panel.customers import forms as customer_forms
from panel.dashboard import forms as dashboard_forms
from panel.webmail import forms as webmail_forms
from panel.webmail.views import INLINE_SALT
from tests.panel_cast import *  # noqa: F403
from tests.panel_cast import PASSWORD
from tests.test_webmail_helpers import PNG, deliver_to, make_message, sign_in

pytestmark = pytest.mark.django_db

SECRET_SUBJECT = "Quarterly secret 7f3a"
MB = 1024 ** 2

# Values to try in every field. Strings are sent UTF-8 and %-encoded; bytes are sent as
# they are (%-encoded), which is how a client sends what is not UTF-8.
HOSTILE: list[str | bytes] = [
    "", "0", "-1", "1.5", "²", str(2 ** 31), str(2 ** 63), "9" * 30, "9" * 5000,
    "9999-12-31", "0001-01-01", "\x00", "é\x01@x.test", "Zoé\x01 <zoé@x.test>",
    "x@" + "a" * 300 + ".test", b"\xff\xfe", "A" * 20_000, "1:99999999999999999999",
    "1:2:3", "-date",
]
# Request headers a view or middleware might parse (no page serves byte ranges today).
HOSTILE_HEADERS = {
    "HTTP_RANGE": "bytes=99999999999999999999999-1,-0,x",
    "HTTP_IF_MODIFIED_SINCE": "Mon, 31 Dec 99999 25:61:61 GMT",
    "HTTP_IF_NONE_MATCH": "\x00" * 10,
    "HTTP_ACCEPT_LANGUAGE": "x" * 600 + ";q=9e999",
    "HTTP_X_FORWARDED_FOR": "999.999.999.999, \x00, ::ffff:1.2.3.4.5",
    "HTTP_REFERER": "http://[::1",
    "HTTP_ACCEPT": "application/json;q=nan",
}
# Names no view reads; a view must ignore them.
GENERIC = ["a", "page", "next", "id", "csrfmiddlewaretoken"]


def _form_fields(form_class: type[django_forms.Form]) -> list[str]:
    return list(form_class.base_fields)


_COMPOSE = _form_fields(webmail_forms.ComposeForm) + ["save"]
_SETTINGS = _form_fields(webmail_forms.SettingsForm)

# url name -> {method: names the view reads}. A method the view refuses is still sent once.
FIELDS: dict[str, dict[str, list[str]]] = {
    # webmail
    "webmail:index": {"GET": []},
    "webmail:login": {"GET": ["next", "address"],
                      "POST": _form_fields(webmail_forms.LoginForm) + ["next"]},
    "webmail:logout": {"POST": []},
    "webmail:folders": {"GET": [], "POST": _form_fields(webmail_forms.FolderCreateForm)},
    "webmail:folder": {"GET": _form_fields(webmail_forms.SearchForm) + ["sort", "page"]},
    "webmail:act": {"POST": ["action", "target", "uid", "next"]},
    "webmail:empty": {"POST": []},
    "webmail:read_all": {"POST": ["next"]},
    "webmail:folder_rename": {"POST": _form_fields(webmail_forms.FolderRenameForm)},
    "webmail:folder_delete": {"POST": []},
    "webmail:message": {"GET": ["view", "remote", "l"]},
    "webmail:body": {"GET": ["view", "remote"]},
    "webmail:original": {"GET": ["download"]},
    "webmail:attachment": {"GET": []},
    "webmail:inline_prefix": {"GET": []},
    "webmail:inline": {"GET": []},
    "webmail:compose": {"GET": ["mode", "ref", "to"], "POST": _COMPOSE + ["next"]},
    "webmail:autosave": {"POST": _COMPOSE},
    "webmail:discard": {"POST": ["draft"]},
    "webmail:suggest": {"GET": ["q"]},
    "webmail:poll": {"GET": ["folder", "modseq", "uidnext"]},
    "webmail:settings": {"GET": [], "POST": _SETTINGS},
    "webmail:password": {"POST": _form_fields(webmail_forms.PasswordChangeForm)},
    "webmail:app_password_add": {"POST": _form_fields(webmail_forms.AppPasswordForm)},
    "webmail:app_password_revoke": {"POST": []},
    "webmail:sender_add": {"POST": _form_fields(webmail_forms.SenderRuleForm)},
    "webmail:sender_remove": {"POST": []},
    # customers
    "home": {"GET": []},
    "domain_add": {"GET": [], "POST": _form_fields(customer_forms.DomainForm)},
    "domain_detail": {"GET": []},
    "domain_dns": {"GET": [], "POST": []},
    "domain_verify": {"POST": ["next"]},
    "domain_remove": {"GET": [], "POST": _form_fields(customer_forms.ConfirmNameForm)},
    "catch_all": {"GET": [], "POST": _form_fields(customer_forms.CatchAllForm)},
    "sender_checks": {"GET": [], "POST": _form_fields(customer_forms.SenderChecksForm)},
    "spam_filter": {"GET": [], "POST": _form_fields(customer_forms.SpamFilterForm)},
    "refused_mail": {"GET": []},
    "mailbox_add": {"GET": [], "POST": _form_fields(customer_forms.MailboxCreateForm)},
    "alias_add": {"GET": [], "POST": _form_fields(customer_forms.AliasForm)},
    "mailbox_detail": {"GET": []},
    "mailbox_edit": {"GET": [], "POST": _form_fields(customer_forms.MailboxEditForm)},
    "mailbox_password": {"GET": [],
                         "POST": _form_fields(customer_forms.MailboxPasswordForm)},
    "mailbox_toggle": {"POST": []},
    "mailbox_pop3": {"POST": _form_fields(customer_forms.Pop3PolicyForm)},
    "mailbox_forward": {"GET": [], "POST": _form_fields(customer_forms.ForwardForm)},
    "mailbox_delete": {"GET": [], "POST": []},
    "mailbox_setup": {"GET": []},
    "mailbox_mobileconfig": {"GET": []},
    "app_password_add": {"POST": _form_fields(customer_forms.AppPasswordForm)},
    "app_password_revoke": {"POST": []},
    "alias_edit": {"GET": [], "POST": _form_fields(customer_forms.AliasForm)},
    "alias_delete": {"POST": []},
    # dashboard
    "dashboard": {"GET": []},
    "customer_list": {"GET": []},
    "customer_limits": {"GET": [], "POST": _form_fields(dashboard_forms.LimitsForm)},
    "outbox": {"GET": []},
    "outbox_message": {"GET": []},
    "outbox_clear": {"POST": []},
    # mail clients
    "autoconfig_wellknown": {"GET": ["emailaddress"]},
    "autoconfig_mail": {"GET": ["emailaddress"]},
    "autodiscover": {"GET": [], "POST": []},
    "": {"GET": [], "POST": []},  # /Autodiscover/Autodiscover.xml has no name
    # the load balancer's health check
    "healthz": {"GET": []},
}

# The panel's own URL modules, which the walk covers; the rest of the root URLconf is
# django-allauth and the admin.
WALKED_MODULES = ("panel.customers.urls", "panel.autoconfig.urls", "panel.dashboard.urls",
                  "panel.webmail.urls")


def _walk(patterns, prefix: str = "", namespace: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            module = getattr(entry.urlconf_module, "__name__", "")
            if module not in WALKED_MODULES:
                continue
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        else:
            yield prefix + str(entry.pattern), entry


def _patterns() -> list[tuple[str, str, URLPattern]]:
    """Return (url name, route, pattern) of every walked URL, resolved from the URLconf."""
    found = []
    for route, pattern in _walk(get_resolver().url_patterns):
        name = f"{route.split('/')[0]}:{pattern.name}" if route.startswith("webmail/") \
            else (pattern.name or "")
        found.append((name, route, pattern))
    return found


PATTERNS = _patterns()


# The cast and their objects ---------------------------------------------------------------

class World:
    """The owner's objects (ids for the URLs) and the clients of owner and other tenant."""

    def __init__(self, alice_user, bob_user, carol_user, alice_domain, alice_mailbox) -> None:
        self.domain: Domain = alice_domain
        self.mailbox: Mailbox = alice_mailbox
        self.alias: Alias = directory.add_alias("sales@alice.test", ["hello@alice.test"])
        self.app: AppPassword = directory.add_app_password(alice_mailbox, "Phone")[0]
        self.customer = alice_user
        self.uid = deliver_to(alice_mailbox, make_message(
            subject=SECRET_SUBJECT, to="hello@alice.test",
            html='<p>Hi <img src="cid:logo@shop.test"></p>', inline_png="logo@shop.test",
            attachments=[("report.txt", "text/plain", b"numbers\n")]))
        self.inbox = Folder.objects.get(mailbox=alice_mailbox, name="INBOX")
        self.trash = Folder.objects.get(mailbox=alice_mailbox, special_use="\\Trash")
        self.projects = add_folder(alice_mailbox.pk, "Projects")
        self.rule = sender_lists.add(alice_mailbox.pk, "block", "spam@remote.test")
        opened = reading.load(alice_mailbox.pk, self.inbox.pk, self.uid)
        self.inline_path = next(iter(opened.layout.inline.values())).path
        self.token = self.inline_token(alice_mailbox.pk)
        # Bob: another customer, with a domain and a mailbox of his own.
        bob_domain = directory.add_domain("bob.test", owner=bob_user, verified=True)
        self.bob_mailbox = directory.add_mailbox("mail@bob.test", PASSWORD)
        assert bob_domain.pk != alice_domain.pk
        self.users = {"alice": alice_user, "bob": bob_user, "carol": carol_user}
        # System mail kept by the development outbox (its folder is the test's own).
        self.outbox_key = devoutbox.keep(make_message(subject=SECRET_SUBJECT,
                                                      to="someone@outside.test"),
                                         "noreply@alice.test", ["someone@outside.test"])

    def inline_token(self, mailbox_id: int) -> str:
        return signing.dumps({"m": mailbox_id, "f": self.inbox.pk, "u": self.uid,
                              "p": self.inline_path}, salt=INLINE_SALT, compress=True)

    def client(self, who: str, webmail: bool) -> Client:
        client = Client(raise_request_exception=False)
        if webmail:
            address = {"alice": "hello@alice.test", "bob": "mail@bob.test"}[who]
            return sign_in(client, address)
        if who != "anonymous":
            client.force_login(self.users[who])
        return client

    def kwargs(self, name: str, pattern: URLPattern) -> dict:
        """Return real path values for a URL: the owner's objects."""
        wanted = set(pattern.pattern.converters)
        values: dict = {}
        if "folder_id" in wanted:
            values["folder_id"] = {"webmail:empty": self.trash.pk,
                                   "webmail:folder_rename": self.projects.pk,
                                   "webmail:folder_delete": self.projects.pk
                                   }.get(name, self.inbox.pk)
        if "uid" in wanted:
            values["uid"] = self.uid
        if "path" in wanted:
            values["path"] = "2"
        if "token" in wanted:
            values["token"] = self.token
        if "key" in wanted:
            values["key"] = self.outbox_key
        if "app_id" in wanted:
            values["app_id"] = self.app.pk
        if "rule_id" in wanted:
            values["rule_id"] = self.rule.pk
        if "app_pk" in wanted:
            values["app_pk"] = self.app.pk
        if "pk" in wanted:
            if name.startswith(("domain_", "catch_all", "sender_checks", "spam_filter",
                                "refused_mail", "mailbox_add", "alias_add")):
                values["pk"] = self.domain.pk
            elif name.startswith(("mailbox_", "app_password_")):
                values["pk"] = self.mailbox.pk
            elif name.startswith("alias_"):
                values["pk"] = self.alias.pk
            elif name == "customer_limits":
                values["pk"] = self.customer.pk
        assert set(values) == wanted, (name, wanted)
        return values

    def baseline(self, name: str) -> dict[str, str]:
        """Return valid values for a view's fields, so a hostile one reaches deep."""
        compose = {"from_address": "hello@alice.test", "to": "friend@remote.test",
                   "subject": "Hi", "body": "Hello", "replying": f"{self.inbox.pk}:{self.uid}"}
        return {
            "webmail:login": {"address": "hello@alice.test", "password": "wrong password"},
            "webmail:folders": {"name": "New", "parent": str(self.projects.pk)},
            "webmail:act": {"action": "move", "target": str(self.projects.pk),
                            "uid": str(self.uid)},
            "webmail:folder_rename": {"name": "Renamed"},
            "webmail:compose": {**compose, "mode": "reply",
                                "ref": f"{self.inbox.pk}:{self.uid}"},
            "webmail:autosave": compose,
            "webmail:settings": {"display_name": "Hello", "vacation_enabled": "on",
                                 "vacation_body": "Away", "vacation_start": "2025-01-01",
                                 "vacation_end": "2025-01-02", "vacation_interval_days": "7"},
            "webmail:sender_add": {"kind": "allow", "sender": "friend@remote.test"},
            "webmail:folder": {"q": "secret", "since": "2020-01-01", "until": "2030-01-01"},
            "webmail:password": {"current_password": "not the password",
                                 "password1": "a much longer Pass phrase 9",
                                 "password2": "a much longer Pass phrase 9"},
            "webmail:app_password_add": {"name": "Laptop", "current_password": "not it"},
            "webmail:poll": {"folder": str(self.inbox.pk), "modseq": "1", "uidnext": "1"},
            "domain_add": {"name": "new.test"},
            "domain_remove": {"confirm": "wrong.test"},
            "catch_all": {"destinations": "hello@alice.test"},
            "sender_checks": {"dmarc_reject": "quarantine"},
            "spam_filter": {"spam_sensitivity": "strict", "greylisting": "on"},
            "mailbox_add": {"local_part": "new", "display_name": "New",
                            "password1": "a much longer Pass phrase 9",
                            "password2": "a much longer Pass phrase 9", "quota_mb": "10"},
            "alias_add": {"local_part": "team", "destinations": "hello@alice.test"},
            "alias_edit": {"destinations": "hello@alice.test"},
            "mailbox_edit": {"display_name": "Hi", "quota_mb": "10"},
            "mailbox_password": {"password1": "a much longer Pass phrase 9",
                                 "password2": "a much longer Pass phrase 9"},
            "mailbox_pop3": {"pop3_policy": "keep"},
            "mailbox_forward": {"destinations": "boss@elsewhere.test", "keep_copy": "on"},
            "app_password_add": {"name": "Laptop"},
            "customer_limits": {"max_domains": "5", "max_mailboxes": "5",
                                "max_storage_mb": "100"},
            "autoconfig_mail": {"emailaddress": "hello@alice.test"},
            "autoconfig_wellknown": {"emailaddress": "hello@alice.test"},
        }.get(name, {})


@pytest.fixture(autouse=True)
def _fast_web_passwords(settings) -> None:
    """The cast's panel logins hashed cheaply: the walk makes three users per URL."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(alice_user, bob_user, carol_user, alice_domain, alice_mailbox, removals,  # noqa: F811
          settings, tmp_path) -> World:
    settings.DEV_OUTBOX_DIR = tmp_path / "outbox"
    return World(alice_user, bob_user, carol_user, alice_domain, alice_mailbox)


# Sending ------------------------------------------------------------------------------------

def _encode(value: str | bytes) -> str:
    return quote(value, safe="")


def _query(data: dict[str, str | bytes | list]) -> str:
    pairs = []
    for name, value in data.items():
        for one in value if isinstance(value, list) else [value]:
            pairs.append(f"{_encode(name)}={_encode(one)}")
    return "&".join(pairs)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged_errors() -> Iterator[_Errors]:
    """Collect every ERROR logged anywhere (django.request logs each 500 there)."""
    handler = _Errors()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def _send(client: Client, method: str, url: str, data: dict) -> int:
    body = _query(data)
    if method == "GET":
        response = client.get(f"{url}?{body}" if body else url)
    else:
        response = client.post(url, body, content_type="application/x-www-form-urlencoded")
    return response.status_code


def _check(failures: list[str], errors: _Errors, status: int, what: str) -> None:
    if status >= 500 or errors.records:
        logged = "; ".join(r.getMessage()[:200] for r in errors.records)
        failures.append(f"{what} -> {status} {logged}")
        errors.records.clear()


def _who(name: str) -> tuple[str, bool]:
    """Return who owns a URL's objects (alice, or carol for staff pages) and if webmail."""
    if name.startswith("webmail:"):
        return "alice", True
    if name in ("dashboard", "customer_list", "customer_limits", "domain_verify", "outbox",
                "outbox_message", "outbox_clear"):
        return "carol", False
    if name.startswith("autoconfig") or name in ("autodiscover", "", "healthz"):
        return "anonymous", False
    return "alice", False


def _url(route_name: str, pattern: URLPattern, kwargs: dict) -> str:
    if route_name == "":
        return "/Autodiscover/Autodiscover.xml"
    return reverse(route_name, kwargs=kwargs or None) if kwargs or not pattern.default_args \
        else reverse(route_name)


# The walk -----------------------------------------------------------------------------------

def test_the_field_table_lists_every_walked_url() -> None:
    names = {name for name, _, _ in PATTERNS}
    assert names == set(FIELDS), (names ^ set(FIELDS))


@pytest.mark.parametrize("name", sorted({name for name, _, _ in PATTERNS}))
def test_no_input_to_a_page_gives_a_server_error(world: World, logged_errors: _Errors,
                                                  name: str) -> None:
    pattern = next(p for n, _, p in PATTERNS if n == name)
    kwargs = world.kwargs(name, pattern)
    url = _url(name, pattern, kwargs)
    who, webmail = _who(name)
    client = world.client(who, webmail)
    failures: list[str] = []
    baseline = world.baseline(name)
    for method in ("GET", "POST"):
        fields = FIELDS[name].get(method)
        if fields is None:  # refused by the view: once, with junk
            _check(failures, logged_errors, _send(client, method, url, {"a": "\x00"}),
                   f"{method} {url} (not allowed)")
            continue
        status = _send(client, method, url, baseline)
        _check(failures, logged_errors, status, f"{method} {url} baseline")
        if method == "GET" and status >= 400 and name != "webmail:inline_prefix":
            # The owner's own page must open, or the walk tests nothing behind it.
            failures.append(f"GET {url} baseline -> {status}, the owner is refused")
        for value in HOSTILE:  # the names no view reads, all at once
            status = _send(client, method, url, {**baseline, **dict.fromkeys(GENERIC, value)})
            _check(failures, logged_errors, status, f"{method} {url} generic={value!r:.40}")
        for field in fields:
            for value in HOSTILE:
                data = {**baseline, field: value}
                status = _send(client, method, url, data)
                _check(failures, logged_errors, status, f"{method} {url} {field}={value!r:.40}")
            # A list where one value is expected, and the field left out.
            status = _send(client, method, url, {**baseline, field: ["1", "\x00", "x"]})
            _check(failures, logged_errors, status, f"{method} {url} {field}=[list]")
            missing = {k: v for k, v in baseline.items() if k != field}
            status = _send(client, method, url, missing)
            _check(failures, logged_errors, status, f"{method} {url} without {field}")
        for header, value in HOSTILE_HEADERS.items():
            response = getattr(client, method.lower())(url, baseline, **{header: value})
            _check(failures, logged_errors, response.status_code, f"{method} {url} {header}")
        if method == "POST":
            for content_type, body in _malformed_bodies():
                response = client.post(url, body, content_type=content_type)
                _check(failures, logged_errors, response.status_code,
                       f"POST {url} body {content_type[:40]}")
    assert not failures, "\n".join(failures[:40])


def _malformed_bodies() -> list[tuple[str, bytes]]:
    boundary = "XyZ"
    upload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"attachments\"; "
              f"filename=\"a\x00b/../..\\c.txt\"\r\nContent-Type: text/pl\x00ain\r\n\r\n"
              f"data\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n"
              f"\xff\r\n--{boundary}--\r\n").encode("latin-1")
    return [
        (f"multipart/form-data; boundary={boundary}", b"--XyZ\r\ngarbage"),
        ("multipart/form-data", b"no boundary"),
        (f"multipart/form-data; boundary={boundary}", upload),
        ("application/json", b'{"to": [1, 2], "body": null}'),
        ("application/xml", b'<?xml version="1.0" encoding="bogus"?><a/>'),
        ("application/xml", b"<!DOCTYPE a [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><a>&x;</a>"),
        ("text/plain", b"\xff\xfe\x00"),
    ]


@pytest.mark.parametrize("name", sorted({name for name, _, p in PATTERNS
                                         if p.pattern.converters}))
def test_path_values_out_of_range_answer_404(world: World, logged_errors: _Errors,
                                            name: str) -> None:
    pattern = next(p for n, _, p in PATTERNS if n == name)
    who, webmail = _who(name)
    client = world.client(who, webmail)
    failures: list[str] = []
    for key in pattern.pattern.converters:
        for value in ("0", str(2 ** 63 - 1), str(2 ** 63), str(2 ** 64), "9" * 40, "%00",
                      "%FF", "x" * 3000):
            kwargs = {k: str(v) for k, v in world.kwargs(name, pattern).items()}
            real = _url(name, pattern, world.kwargs(name, pattern))
            url = real.replace(f"/{kwargs[key]}/", f"/{value}/", 1)
            for method in FIELDS[name]:
                response = getattr(client, method.lower())(url)
                _check(failures, logged_errors, response.status_code, f"{method} {url[:80]}")
                if response.status_code not in (404, 405):
                    failures.append(f"{method} {url[:80]} -> {response.status_code}, not 404")
    assert not failures, "\n".join(failures[:40])


@pytest.mark.parametrize("name", sorted({name for name, _, p in PATTERNS
                                         if p.pattern.converters and name != "webmail:inline"}))
def test_another_tenant_gets_404_for_the_owners_objects(world: World, logged_errors: _Errors,
                                                         name: str) -> None:
    pattern = next(p for n, _, p in PATTERNS if n == name)
    url = _url(name, pattern, world.kwargs(name, pattern))
    _, webmail = _who(name)
    client = world.client("bob", webmail)
    for method in FIELDS[name]:
        response = getattr(client, method.lower())(url, world.baseline(name))
        assert response.status_code == 404, (method, url, response.status_code)
        assert SECRET_SUBJECT.encode() not in response.content
        assert b"alice.test" not in response.content
    assert not logged_errors.records
    assert Mailbox.objects.filter(pk=world.mailbox.pk, is_active=True).exists()
    assert Domain.objects.filter(pk=world.domain.pk, is_active=True).exists()
    assert AppPassword.objects.filter(pk=world.app.pk).exists()
    assert Folder.objects.filter(pk=world.projects.pk).exists()


def test_an_inline_image_token_of_another_mailbox_is_refused(world: World) -> None:
    bob = world.client("bob", webmail=True)
    forged = world.inline_token(world.bob_mailbox.pk)
    assert bob.get(reverse("webmail:inline", args=[forged])).status_code == 404
    assert world.client("alice", webmail=True).get(
        reverse("webmail:inline", args=[world.token])).content == PNG


# Each bug the walk found ------------------------------------------------------------------

@pytest.fixture
def mail(alice_mailbox) -> Client:  # noqa: F811
    """A browser signed in to webmail as hello@alice.test, with one message in INBOX."""
    deliver_to(alice_mailbox, make_message(subject=SECRET_SUBJECT, to="hello@alice.test"))
    return sign_in(Client(raise_request_exception=False), "hello@alice.test")


def _inbox(mailbox: Mailbox) -> Folder:
    return Folder.objects.get(mailbox=mailbox, name="INBOX")


def test_a_search_until_the_last_day_of_the_calendar_lists_everything(
        mail: Client, alice_mailbox) -> None:
    url = reverse("webmail:folder", args=[_inbox(alice_mailbox).pk])
    response = mail.get(url, {"until": "9999-12-31"})
    assert response.status_code == 200
    assert SECRET_SUBJECT in response.content.decode()


@pytest.mark.parametrize("field", ["folder", "modseq", "uidnext"])
@pytest.mark.parametrize("value", ["²", "9" * 5000, str(2 ** 63), "-1"])
def test_the_poll_answers_400_to_a_number_it_cannot_use(mail: Client, alice_mailbox,
                                                        field: str, value: str) -> None:
    params = {"folder": str(_inbox(alice_mailbox).pk), "modseq": "0", "uidnext": "0",
              field: value}
    response = mail.get(reverse("webmail:poll"), params)
    assert response.status_code == 400
    assert "whole numbers" in response.json()["error"]


@pytest.mark.parametrize("field", ["uid", "target"])
@pytest.mark.parametrize("value", ["²", "9" * 5000, str(2 ** 64)])
def test_acting_on_messages_ignores_numbers_it_cannot_use(mail: Client, alice_mailbox,
                                                          field: str, value: str) -> None:
    inbox = _inbox(alice_mailbox)
    data = {"action": "move", "uid": "1", "target": str(inbox.pk), field: value}
    response = mail.post(reverse("webmail:act", args=[inbox.pk]), data)
    assert response.status_code in (302, 404)
    assert inbox.messages.count() == 1


@pytest.mark.parametrize("url_name", ["webmail:act", "webmail:read_all", "webmail:compose"])
def test_a_next_that_is_not_a_path_falls_back_to_the_usual_page(mail: Client, alice_mailbox,
                                                                url_name: str) -> None:
    inbox = _inbox(alice_mailbox)
    url = reverse(url_name, args=[inbox.pk]) if url_name != "webmail:compose" else \
        reverse(url_name)
    data = {"next": "0", "action": "read", "uid": "1", "from_address": "hello@alice.test",
            "to": "friend@remote.test", "subject": "Hi", "body": "Hello"}
    response = mail.post(url, data)
    assert response.status_code == 302
    assert response["Location"].startswith("/webmail/folders/")


def _panel(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def test_staff_verifying_a_domain_with_a_next_that_is_not_a_path_see_the_domain(
        carol_user, alice_domain) -> None:  # noqa: F811
    answer = _panel(carol_user).post(reverse("domain_verify", args=[alice_domain.pk]),
                                     {"next": "home"})
    assert answer.status_code == 302
    assert answer["Location"] == reverse("domain_detail", args=[alice_domain.pk])


@pytest.mark.parametrize("url_name", ["webmail:compose", "webmail:autosave"])
def test_mail_to_an_address_with_a_non_ascii_local_part_is_sent_and_saved(
        mail: Client, url_name: str) -> None:
    data = {"from_address": "hello@alice.test", "to": "Zoé <zoé@remote.test>",
            "subject": "Hi", "body": "Hello"}
    response = mail.post(reverse(url_name), data)
    assert response.status_code in (200, 302), response.content[:300]
    drafts_or_sent = Folder.objects.filter(mailbox__local_part="hello",
                                           special_use__in=["\\Sent", "\\Drafts"])
    raws = [store_messages.read(m) for f in drafts_or_sent for m in f.messages.all()]
    assert any("zoé@remote.test".encode() in raw for raw in raws)


def test_an_address_with_control_characters_is_refused_with_a_reason(mail: Client) -> None:
    data = {"from_address": "hello@alice.test", "to": "zoé\x01@remote.test",
            "subject": "Hi", "body": "Hello"}
    response = mail.post(reverse("webmail:compose"), data)
    assert response.status_code == 400
    assert "is not an email address" in response.content.decode()


def test_a_draft_keeps_an_address_with_control_characters_as_typed(mail: Client) -> None:
    data = {"from_address": "hello@alice.test", "to": "zoé\x01@remote.test",
            "subject": "Hi", "body": "Hello"}
    response = mail.post(reverse("webmail:autosave"), data)
    assert response.status_code == 200
    assert response.json()["draft"]


@pytest.mark.parametrize("field", ["max_domains", "max_mailboxes", "max_storage_mb"])
def test_customer_limits_beyond_what_the_database_holds_are_a_form_error(
        carol_user, alice_user, field: str) -> None:  # noqa: F811
    client = _panel(carol_user)
    data = {"max_domains": "5", "max_mailboxes": "5", "max_storage_mb": "100",
            field: str(2 ** 63)}
    response = client.post(reverse("customer_limits", args=[alice_user.pk]), data)
    assert response.status_code == 200
    assert "Ensure this value is less than or equal to" in response.content.decode()


@pytest.mark.parametrize("url_name", ["mailbox_add", "mailbox_edit"])
def test_a_quota_beyond_what_the_database_holds_is_a_form_error(
        alice_user, alice_domain, alice_mailbox, url_name: str) -> None:  # noqa: F811
    selfservice.set_limits(alice_user, 0, 0, 0)  # no limits: only the column bounds the quota
    client = _panel(alice_user)
    pk = alice_domain.pk if url_name == "mailbox_add" else alice_mailbox.pk
    data = {"local_part": "new", "display_name": "", "password1": "a much longer Pass 9x",
            "password2": "a much longer Pass 9x", "quota_mb": str(2 ** 63 // MB)}
    response = client.post(reverse(url_name, args=[pk]), data)
    assert response.status_code == 200
    assert "Ensure this value is less than or equal to" in response.content.decode()


def test_autodiscover_answers_an_xml_request_in_an_unknown_encoding_with_its_error() -> None:
    client = Client(raise_request_exception=False)
    body = b'<?xml version="1.0" encoding="bogus"?><Autodiscover/>'
    response = client.post("/autodiscover/autodiscover.xml", body, content_type="text/xml")
    assert response.status_code == 200
    assert b"<ErrorCode>600</ErrorCode>" in response.content


def test_suggestions_for_a_nul_character_are_none(mail: Client) -> None:
    response = mail.get(reverse("webmail:suggest"), {"q": "fri\x00end"})
    assert response.status_code == 200
    assert response.json() == {"addresses": []}


def test_renaming_a_folder_refuses_a_name_its_subfolders_would_outgrow(
        mail: Client, alice_mailbox) -> None:
    parent = add_folder(alice_mailbox.pk, "P")
    child = add_folder(alice_mailbox.pk, "P/" + "c" * 490)
    response = mail.post(reverse("webmail:folder_rename", args=[parent.pk]),
                         {"name": "Q" * 200}, follow=True)
    assert response.status_code == 200
    assert "too long for the folders inside it" in response.content.decode()
    child.refresh_from_db()
    assert child.name == "P/" + "c" * 490
