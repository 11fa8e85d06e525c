"""Webmail pages: sign in with a mailbox, read, act on, write and send mail.

Every folder and message is fetched through one ownership helper (_get_folder,
_get_opened), which asks the webmail services for the signed-in mailbox's own; another
mailbox's ids answer 404. Every change is a POST (with Django's CSRF check).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailcore import directory, ratelimit
from mailcore.directory import LoginRefused
from mailcore.models import Folder
from mailcore.store.folders import FolderError
from mailcore.webclient import (
    actions,
    compose,
    contacts,
    credentials,
    folder_list,
    listing,
    parts,
    preferences,
    reading,
    sanitize,
    sender_lists,
    trust,
)
from panel.clientip import client_ip
from panel.inputs import local_url, parse_id
from panel.webmail import auth, forms

INLINE_SALT = "webmail.inline"
INLINE_MAX_AGE = 24 * 3600
SORT_CHOICES = ("date", "from", "to", "subject", "size")

log = logging.getLogger("panel.webmail")

# Ownership -----------------------------------------------------------------------------------


def _get_folder(request: HttpRequest, folder_id: int) -> Folder:
    try:
        return folder_list.get_folder(request.principal.mailbox_id, folder_id)
    except folder_list.NoSuchFolder:
        raise Http404("No such folder") from None


def _get_opened(request: HttpRequest, folder_id: int, uid: int,
                prefer_html: bool = True) -> reading.Opened:
    try:
        return reading.load(request.principal.mailbox_id, folder_id, uid,
                            prefer_html=prefer_html)
    except (folder_list.NoSuchFolder, reading.NoSuchMessage):
        raise Http404("No such message") from None


# Helpers -------------------------------------------------------------------------------------

def _next_url(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next")
    return local_url(request, target) or fallback


def _folder_url(folder_id: int, query: str = "") -> str:
    url = reverse("webmail:folder", args=[folder_id])
    return f"{url}?{query}" if query else url


def _sidebar(request: HttpRequest, current: Folder | None = None, totals: bool = False
             ) -> dict:
    items = folder_list.folder_list(request.principal.mailbox_id, totals=totals)
    return {"folders": items, "current_folder": current,
            "poll_seconds": settings.WEBMAIL_POLL_SECONDS}


def _uids(request: HttpRequest) -> list[int]:
    return [uid for uid in map(parse_id, request.POST.getlist("uid")) if uid]


def _attachment_response(data: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    response.headers["Content-Disposition"] = content_disposition_header(True, filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# Signing in and out --------------------------------------------------------------------------

@auth.protect
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    principal = auth.current_principal(request)
    if principal is None:
        return redirect("webmail:login")
    return redirect("webmail:folder", folder_list.inbox(principal.mailbox_id).pk)


@auth.protect
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    # The panel's "Open webmail" names the mailbox (?address=): the form starts with it.
    initial = {"address": request.GET.get("address", "")[:320]}
    form = forms.LoginForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        address = form.cleaned_data["address"].strip()
        ip = client_ip(request)
        # A failure's delay is not slept here (a sync view would hold a web worker, and
        # a dozen guessers would stall every page): this address, and this address for
        # this mailbox, may not try again before it has passed, and are told so at once.
        wait = ratelimit.wait_before(address, ip)
        if wait:
            form.add_error(None, _too_many_attempts(wait))
            return _login_page(request, form)
        try:
            principal = directory.log_in(address, form.cleaned_data["password"], ip)
        except LoginRefused as refused:
            log.info("webmail login failed user=%s ip=%s rate_limited=%s",
                     _printable(address), ip, refused.rate_limited)
            if refused.rate_limited:
                form.add_error(None, _too_many_attempts(refused.retry_after))
            else:
                ratelimit.hold(address, ip, refused.delay)
                form.add_error(None, "The address or the password is wrong.")
        else:
            auth.log_in(request, principal)
            return redirect(_next_url(request, reverse("webmail:index")))
    return _login_page(request, form)


def _login_page(request: HttpRequest, form: forms.LoginForm) -> HttpResponse:
    return render(request, "webmail/login.html", {"form": form,
                                                   "next": request.GET.get("next", "")})


def _too_many_attempts(seconds: int) -> str:
    return f"Too many failed attempts. Try again in {seconds} second{'s' * (seconds != 1)}."


def _printable(text: str) -> str:
    # The address is the visitor's text: no line breaks or controls in a log line.
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:200]


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    auth.log_out(request)
    messages.info(request, "You are signed out of webmail.")
    return redirect("webmail:login")


# Reading -------------------------------------------------------------------------------------

def _sort(request: HttpRequest) -> tuple[str, bool]:
    value = request.GET.get("sort", "-date")
    descending = value.startswith("-")
    name = value.lstrip("-")
    return (name, descending) if name in SORT_CHOICES else ("date", True)


def _sort_links(request: HttpRequest, sort: str, descending: bool) -> dict[str, dict]:
    links = {}
    for name in SORT_CHOICES:
        params = request.GET.copy()
        params.pop("page", None)
        # A new column starts newest/largest first for date and size, A to Z for the rest.
        if name == sort:
            params["sort"] = name if descending else "-" + name
        else:
            params["sort"] = "-" + name if name in ("date", "size") else name
        links[name] = {"url": "?" + params.urlencode(), "active": name == sort,
                       "descending": descending}
    return links


def _page_url(request: HttpRequest, number: int) -> str:
    params = request.GET.copy()
    params["page"] = str(number)
    return "?" + params.urlencode()


@auth.mailbox_required
@require_GET
def folder_view(request: HttpRequest, folder_id: int) -> HttpResponse:
    folder = _get_folder(request, folder_id)
    search = forms.SearchForm(request.GET or None)
    query = search.query() if request.GET else listing.Query()
    sort, descending = _sort(request)
    try:
        number = max(1, min(int(request.GET.get("page", "1")), 100_000))
    except ValueError:
        number = 1
    state = listing.state(folder)  # before the rows: what comes after, the poll reports
    page = listing.page(folder, query, sort, descending, number)
    role = folder_list.role_of(folder)
    live = not query.active and sort == "date" and descending and number == 1
    list_query = request.GET.urlencode()
    context = {
        **_sidebar(request, folder),
        "folder": folder, "role": role, "page": page, "search": search,
        "query": query, "sort_links": _sort_links(request, sort, descending),
        "previous_url": _page_url(request, number - 1) if page.has_previous else "",
        "next_url": _page_url(request, number + 1) if page.has_next else "",
        "show_recipients": role in ("sent", "drafts"),
        "live": live, "list_query": list_query,
        "state": state,
        "today": timezone.localdate(),
        "this_url": request.get_full_path(),
    }
    return render(request, "webmail/folder.html", context)


@auth.mailbox_required
@require_GET
def message_view(request: HttpRequest, folder_id: int, uid: int) -> HttpResponse:
    folder = _get_folder(request, folder_id)
    if folder_list.role_of(folder) == "drafts":
        try:
            is_draft = reading.get_message(folder, uid).draft
        except reading.NoSuchMessage:
            raise Http404("No such message") from None
        if is_draft:  # a draft opens in the editor
            return redirect(reverse("webmail:compose") + f"?mode=draft&ref={folder_id}:{uid}")
    as_text = request.GET.get("view") == "text"
    allow_remote = request.GET.get("remote") == "1"
    opened = _get_opened(request, folder_id, uid, prefer_html=not as_text)
    reading.mark_seen(opened)
    blocked = False
    if opened.layout.has_html:
        blocked = opened.html(lambda url: None, allow_remote=allow_remote).blocked_remote
    body_url = reverse("webmail:body", args=[folder_id, uid])
    body_params = QueryDict(mutable=True)
    if allow_remote:
        body_params["remote"] = "1"
    if as_text:
        body_params["view"] = "text"
    list_query = request.GET.get("l", "")
    newer, older = listing.neighbours(folder, uid)
    carried = "?" + urlencode({"l": list_query}) if list_query else ""
    context = {
        **_sidebar(request, folder),
        "folder": folder, "role": folder_list.role_of(folder), "opened": opened,
        "message": opened.message, "headers": opened.headers,
        "has_html": opened.layout.has_html,
        "body_url": body_url + ("?" + body_params.urlencode() if body_params else ""),
        "text_html": "" if opened.layout.has_html else sanitize.text_to_html(opened.text()),
        "blocked_remote": blocked, "allow_remote": allow_remote, "as_text": as_text,
        "remote_url": "?" + _merge(request, remote="1"),
        "text_url": "?" + _merge(request, view="text", remote=None),
        "html_url": "?" + _merge(request, view=None),
        "attachments": opened.attachments,
        "back_url": _folder_url(folder.pk, list_query),
        "newer_url": reverse("webmail:message", args=[folder.pk, newer]) + carried
        if newer else "",
        "older_url": reverse("webmail:message", args=[folder.pk, older]) + carried
        if older else "",
        "ref": f"{folder.pk}:{uid}",
        "this_url": request.get_full_path(),
        "conversation": listing.conversation(folder, uid),
        "carried": carried,
        "trust": trust.trust_of(opened.raw),
    }
    return render(request, "webmail/message.html", context)


def _merge(request: HttpRequest, **changes: str | None) -> str:
    params = request.GET.copy()
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return params.urlencode()


def _inline_url_maker(request: HttpRequest, folder_id: int, uid: int, opened: reading.Opened
                      ) -> Callable[[str], str | None]:
    """Return what turns a cid: URL into the signed URL of that inline part."""
    mailbox_id = request.principal.mailbox_id

    def cid_url(url: str) -> str | None:
        part = opened.layout.inline.get(parts.cid_key(url))
        if part is None:
            return None
        token = signing.dumps({"m": mailbox_id, "f": folder_id, "u": uid, "p": part.path},
                              salt=INLINE_SALT, compress=True)
        return reverse("webmail:inline", args=[token])

    return cid_url


@xframe_options_sameorigin
@auth.mailbox_required
@require_GET
def message_body(request: HttpRequest, folder_id: int, uid: int) -> HttpResponse:
    """Serve a message's body as its own document, for the sandboxed frame."""
    as_text = request.GET.get("view") == "text"
    allow_remote = request.GET.get("remote") == "1"
    opened = _get_opened(request, folder_id, uid, prefer_html=not as_text)
    clean = opened.html(_inline_url_maker(request, folder_id, uid, opened), allow_remote)
    response = HttpResponse(sanitize.document(clean.html),
                            content_type="text/html; charset=utf-8")
    inline_prefix = request.build_absolute_uri(reverse("webmail:inline_prefix"))
    response.headers["Content-Security-Policy"] = sanitize.document_policy(
        inline_prefix, allow_remote)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@require_GET
def inline_part(request: HttpRequest, token: str) -> HttpResponse:
    """Serve an inline (cid:) image to the message frame.

    The frame is sandboxed, so its requests carry no session: the URL itself, signed and
    short-lived, says which mailbox's part it is.
    """
    try:
        data = signing.loads(token, salt=INLINE_SALT, max_age=INLINE_MAX_AGE)
        part, content = reading.part_of(int(data["m"]), int(data["f"]), int(data["u"]),
                                        str(data["p"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError,
            folder_list.NoSuchFolder, reading.NoSuchMessage):
        raise Http404("No such image") from None
    content_type = part.content_type if part.is_image else "application/octet-stream"
    response = _attachment_response(content, content_type, part.filename or "image")
    response.headers["Cache-Control"] = f"private, max-age={INLINE_MAX_AGE}"
    return response


@auth.mailbox_required
@require_GET
def attachment(request: HttpRequest, folder_id: int, uid: int, path: str) -> HttpResponse:
    try:
        part, content = reading.part_of(request.principal.mailbox_id, folder_id, uid, path)
    except (folder_list.NoSuchFolder, reading.NoSuchMessage):
        raise Http404("No such attachment") from None
    return _attachment_response(content, part.content_type, part.filename or "attachment")


@auth.mailbox_required
@require_GET
def original(request: HttpRequest, folder_id: int, uid: int) -> HttpResponse:
    try:
        raw = reading.original(request.principal.mailbox_id, folder_id, uid)
    except (folder_list.NoSuchFolder, reading.NoSuchMessage):
        raise Http404("No such message") from None
    if request.GET.get("download") == "1":
        return _attachment_response(raw, "message/rfc822", f"message-{uid}.eml")
    response = HttpResponse(raw, content_type="text/plain; charset=utf-8")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# Acting --------------------------------------------------------------------------------------

@auth.mailbox_required
@require_POST
def act(request: HttpRequest, folder_id: int) -> HttpResponse:
    folder = _get_folder(request, folder_id)
    action = request.POST.get("action", "")
    try:
        done = actions.apply(request.principal.mailbox_id, folder.pk, _uids(request), action,
                             parse_id(request.POST.get("target")))
    except actions.ActionRefused as refused:
        messages.error(request, str(refused))
    except folder_list.NoSuchFolder:
        raise Http404("No such folder") from None
    else:
        messages.success(request, done)
    return redirect(_next_url(request, _folder_url(folder.pk)))


@auth.mailbox_required
@require_POST
def empty(request: HttpRequest, folder_id: int) -> HttpResponse:
    folder = _get_folder(request, folder_id)
    try:
        count = actions.empty(request.principal.mailbox_id, folder.pk)
    except actions.ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"{folder.name} is empty ({count} deleted for good).")
    return redirect(_folder_url(folder.pk))


@auth.mailbox_required
@require_POST
def mark_all_read(request: HttpRequest, folder_id: int) -> HttpResponse:
    folder = _get_folder(request, folder_id)
    count = actions.mark_all_read(request.principal.mailbox_id, folder.pk)
    messages.success(request, f"{count} messages marked read.")
    return redirect(_next_url(request, _folder_url(folder.pk)))


# Folders -------------------------------------------------------------------------------------

@auth.mailbox_required
@require_http_methods(["GET", "POST"])
def folder_manage(request: HttpRequest) -> HttpResponse:
    sidebar = _sidebar(request, totals=True)
    form = forms.FolderCreateForm(request.POST or None, folders=sidebar["folders"])
    if request.method == "POST" and form.is_valid():
        try:
            created = folder_list.create(request.principal.mailbox_id, form.cleaned_data["name"],
                                     form.cleaned_data["parent"])
        except FolderError as refused:
            form.add_error("name", refused.text)
        except folder_list.NoSuchFolder:
            form.add_error("parent", "That folder is gone.")
        else:
            messages.success(request, f"Folder {created.name} is created.")
            return redirect("webmail:folders")
    return render(request, "webmail/folders.html", {**sidebar, "form": form})


@auth.mailbox_required
@require_POST
def folder_rename(request: HttpRequest, folder_id: int) -> HttpResponse:
    folder = _get_folder(request, folder_id)
    form = forms.FolderRenameForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the folder a name.")
    else:
        try:
            renamed = folder_list.rename(request.principal.mailbox_id, folder.pk,
                                     form.cleaned_data["name"])
        except FolderError as refused:
            messages.error(request, refused.text)
        else:
            messages.success(request, f"{folder.name} is now {renamed.name}.")
    return redirect("webmail:folders")


@auth.mailbox_required
@require_POST
def folder_delete(request: HttpRequest, folder_id: int) -> HttpResponse:
    folder = _get_folder(request, folder_id)
    try:
        folder_list.delete(request.principal.mailbox_id, folder.pk)
    except FolderError as refused:
        messages.error(request, refused.text)
    else:
        messages.success(request, f"Folder {folder.name} and its messages are deleted.")
    return redirect("webmail:folders")


# Writing -------------------------------------------------------------------------------------

def _compose_page(request: HttpRequest, form: forms.ComposeForm, draft: compose.Draft,
                  status: int = 200) -> HttpResponse:
    heading = ("Draft" if draft.draft else "Reply" if draft.replying else
               "Forward" if draft.forwarding else "New message")
    return render(request, "webmail/compose.html", {
        **_sidebar(request), "form": form, "heading": heading,
        "kept": compose.attachments(request.principal, draft.kept),
        "attached": draft.attached,
        "autosave_seconds": settings.WEBMAIL_AUTOSAVE_SECONDS,
    }, status=status)


def _form_for(request: HttpRequest, draft: compose.Draft) -> forms.ComposeForm:
    initial = forms.ComposeForm.initial_from(draft)
    return forms.ComposeForm(initial=initial, principal=request.principal,
                             kept_choices=initial["kept"])


@auth.mailbox_required
@require_http_methods(["GET", "POST"])
def compose_view(request: HttpRequest) -> HttpResponse:
    principal = request.principal
    if request.method == "GET":
        mode = request.GET.get("mode", "new")
        try:
            draft = compose.prefill(principal, mode,
                                    compose.MessageRef.parse(request.GET.get("ref")))
        except (folder_list.NoSuchFolder, reading.NoSuchMessage):
            raise Http404("No such message") from None
        if request.GET.get("to") and mode == "new":
            draft.to = request.GET["to"][:1000]
        return _compose_page(request, _form_for(request, draft), draft)
    form = forms.ComposeForm(request.POST, request.FILES, principal=principal)
    if not form.is_valid():
        carried = compose.Draft(
            kept=[r for r in map(compose.PartRef.parse, request.POST.getlist("kept")) if r],
            attached=compose.MessageRef.parse(request.POST.get("attached")),
            draft=compose.MessageRef.parse(request.POST.get("draft")))
        return _compose_page(request, form, carried, status=400)
    draft = form.draft_data()
    if "save" in request.POST:
        try:
            ref, _ = compose.save_draft(principal, draft)
        except compose.ComposeError as refused:
            messages.error(request, str(refused))
            return _compose_page(request, form, draft, status=400)
        messages.success(request, "The draft is saved.")
        return redirect(reverse("webmail:compose") + f"?mode=draft&ref={ref}")
    try:
        sent = compose.send(principal, draft, peer_ip=request.META.get("REMOTE_ADDR", ""),
                            secure=request.is_secure())
    except compose.ComposeError as refused:
        return _refused(request, form, draft, str(refused))
    if sent.copy_saved:
        messages.success(request, "Your message is sent.")
    else:
        messages.warning(request, "Your message is sent, but the mailbox is full: no copy "
                                  "was kept in Sent.")
    fallback = reverse("webmail:folder", args=[folder_list.inbox(principal.mailbox_id).pk])
    if draft.replying is not None:
        fallback = reverse("webmail:folder", args=[draft.replying.folder_id])
    return redirect(_next_url(request, fallback))


def _refused(request: HttpRequest, form: forms.ComposeForm, draft: compose.Draft,
             reason: str) -> HttpResponse:
    """Show why a message was not sent, with it kept as a draft (uploads included)."""
    try:
        ref, _ = compose.save_draft(request.principal, draft)
    except compose.ComposeError:
        messages.error(request, f"Not sent: {reason}")
        return _compose_page(request, form, draft, status=400)
    messages.error(request, f"Not sent: {reason} It is kept in Drafts.")
    saved = compose.prefill(request.principal, "draft", ref)
    saved.replying, saved.forwarding = draft.replying, draft.forwarding
    return _compose_page(request, _form_for(request, saved), saved, status=400)


@auth.mailbox_required(api=True)
@require_POST
def autosave(request: HttpRequest) -> HttpResponse:
    """Save the compose form as a draft (the page's timer calls this); answer in JSON."""
    form = forms.ComposeForm(request.POST, request.FILES, principal=request.principal)
    if not form.is_valid():
        return JsonResponse({"error": "The form has errors."}, status=400)
    try:
        ref, attached = compose.save_draft(request.principal, form.draft_data())
    except compose.ComposeError as refused:
        return JsonResponse({"error": str(refused)}, status=400)
    return JsonResponse({
        "draft": str(ref),
        "attachments": [{"ref": str(a.ref), "name": a.name, "size": a.size} for a in attached],
        "saved": timezone.localtime().strftime("%H:%M"),
    })


@auth.mailbox_required
@require_POST
def discard(request: HttpRequest) -> HttpResponse:
    ref = compose.MessageRef.parse(request.POST.get("draft"))
    if ref is not None and compose.discard_draft(request.principal, ref):
        messages.success(request, "The draft is deleted.")
    drafts = folder_list.special_folder(request.principal.mailbox_id, "drafts")
    return redirect("webmail:folder", drafts.pk if drafts else folder_list.inbox(
        request.principal.mailbox_id).pk)


@auth.mailbox_required(api=True)
@require_GET
def suggest(request: HttpRequest) -> HttpResponse:
    form = forms.SuggestForm(request.GET)
    if not form.is_valid():
        return JsonResponse({"addresses": []})
    return JsonResponse({"addresses": contacts.recent(request.principal, form.cleaned_data["q"])})


# New mail without reloading ------------------------------------------------------------------

@auth.mailbox_required(api=True)
@require_GET
def poll(request: HttpRequest) -> HttpResponse:
    """Answer the list's poll: unread counts, changed flags, and rows for new mail."""
    counts = folder_list.unread_counts(request.principal.mailbox_id)
    answer: dict = {"unread": {str(k): v for k, v in counts.items()}}
    if request.GET.get("folder"):
        folder_id = parse_id(request.GET["folder"])
        modseq = parse_id(request.GET.get("modseq", "0"))
        uidnext = parse_id(request.GET.get("uidnext", "0"))
        if folder_id is None or modseq is None or uidnext is None:
            return JsonResponse({"error": "The folder, modseq and uidnext must be whole "
                                          "numbers."}, status=400)
        folder = _get_folder(request, folder_id)
        changes = listing.changes(folder, modseq, uidnext)
        answer.update({
            "modseq": changes.modseq, "uidnext": changes.uidnext, "reload": changes.reload,
            "changed": changes.changed, "gone": changes.gone,
            "new_count": len(changes.new_rows),
            "new_rows": render_to_string("webmail/_rows.html", {
                "rows": changes.new_rows, "folder": folder, "today": timezone.localdate(),
                "show_recipients": folder_list.role_of(folder) in ("sent", "drafts"),
                "list_query": ""}, request=request) if changes.new_rows else "",
        })
    return JsonResponse(answer)


VACATION_FIELDS = ("vacation_enabled", "vacation_subject", "vacation_body", "vacation_start",
                   "vacation_end", "vacation_interval_days")


# Settings ------------------------------------------------------------------------------------

@auth.mailbox_required
@require_http_methods(["GET", "POST"])
def settings_view(request: HttpRequest) -> HttpResponse:
    principal = request.principal
    form = forms.SettingsForm(request.POST or None, initial=_settings_initial(principal))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        preferences.set_display_name(principal.mailbox_id, data["display_name"])
        preferences.save(principal.mailbox_id, signature=data["signature"],
                         **{f: data[f] for f in VACATION_FIELDS})
        messages.success(request, "Your settings are saved.")
        return redirect("webmail:settings")
    return _settings_page(request, form=form)


def _settings_initial(principal) -> dict:
    current = preferences.get(principal.mailbox_id)
    return {"display_name": principal.display_name, "signature": current.signature,
            **{f: getattr(current, f) for f in VACATION_FIELDS}}


def _settings_page(request: HttpRequest, **forms_given) -> HttpResponse:
    principal = request.principal
    used, quota = preferences.storage(principal.mailbox_id)
    page_forms = {
        "form": forms_given.get("form")
        or forms.SettingsForm(initial=_settings_initial(principal)),
        "password_form": forms_given.get("password_form")
        or forms.PasswordChangeForm(address=principal.address),
        "app_form": forms_given.get("app_form") or forms.AppPasswordForm(),
        "rule_form": forms_given.get("rule_form") or forms.SenderRuleForm(),
    }
    return render(request, "webmail/settings.html", {
        **_sidebar(request), **page_forms, "used_bytes": used, "quota_bytes": quota,
        "app_passwords": credentials.app_passwords(principal.mailbox_id),
        "signed_in_with_app": principal.credential != "password",
        "rules": sender_lists.rules(principal.mailbox_id),
        "created": forms_given.get("created")})


def _check_refused(request: HttpRequest, form, refused: LoginRefused) -> None:
    """Put a refused current password on the form, holding the guesser as a login does."""
    address, ip = request.principal.address, client_ip(request)
    log.info("webmail password check failed user=%s ip=%s rate_limited=%s", address, ip,
             refused.rate_limited)
    if refused.rate_limited:
        form.add_error(None, _too_many_attempts(refused.retry_after))
    else:
        ratelimit.hold(address, ip, refused.delay)
        form.add_error("current_password", "The current password is wrong.")


def _waiting(request: HttpRequest, form) -> bool:
    """Refuse at once, unchecked, while a failed attempt's delay lasts (as the login page)."""
    wait = ratelimit.wait_before(request.principal.address, client_ip(request))
    if wait:
        form.add_error(None, _too_many_attempts(wait))
    return bool(wait)


@auth.mailbox_required
@sensitive_post_parameters("current_password", "password1", "password2")
@require_POST
def password_change(request: HttpRequest) -> HttpResponse:
    principal = request.principal
    form = forms.PasswordChangeForm(request.POST, address=principal.address)
    if form.is_valid() and not _waiting(request, form):
        try:
            credentials.change_password(principal.mailbox_id,
                                        form.cleaned_data["current_password"],
                                        form.cleaned_data["password1"], client_ip(request))
        except LoginRefused as refused:
            _check_refused(request, form, refused)
        else:
            # The mailbox's other web sessions no longer match; this one signs in anew.
            auth.log_in(request, principal)
            log.info("webmail password changed user=%s", principal.address)
            messages.success(request, "Your password is changed. Mail apps that use it "
                                      "need the new one; other webmail sessions are signed "
                                      "out.")
            return redirect("webmail:settings")
    return _settings_page(request, password_form=form)


@auth.mailbox_required
@sensitive_post_parameters("current_password")
@require_POST
def app_password_add(request: HttpRequest) -> HttpResponse:
    principal = request.principal
    form = forms.AppPasswordForm(request.POST)
    if form.is_valid() and not _waiting(request, form):
        try:
            app, secret = credentials.add_app_password(
                principal.mailbox_id, form.cleaned_data["current_password"],
                form.cleaned_data["name"], client_ip(request))
        except LoginRefused as refused:
            _check_refused(request, form, refused)
        except directory.DirectoryError as exc:
            form.add_error("name", str(exc))
        else:
            # Shown once, in this response; only its hash is kept.
            return _settings_page(request, created={"app": app, "secret": secret})
    return _settings_page(request, app_form=form)


@auth.mailbox_required
@require_POST
def sender_add(request: HttpRequest) -> HttpResponse:
    """Put a sender on the mailbox's always-allow or always-block list."""
    rule_form = forms.SenderRuleForm(request.POST)
    if rule_form.is_valid():
        data = rule_form.cleaned_data
        try:
            rule = sender_lists.add(request.principal.mailbox_id, data["kind"], data["sender"])
        except sender_lists.ListError as exc:
            rule_form.add_error("sender", str(exc))
        else:
            messages.success(request, f"{rule.pattern} is now on your "
                                      f"{rule.get_kind_display().lower()} list.")
            return redirect(reverse("webmail:settings") + "#senders")
    return _settings_page(request, rule_form=rule_form)


@auth.mailbox_required
@require_POST
def app_password_revoke(request: HttpRequest, app_id: int) -> HttpResponse:
    try:
        app = credentials.revoke_app_password(request.principal.mailbox_id, app_id)
    except credentials.NoSuchAppPassword:
        raise Http404("No such app password") from None
    messages.success(request, f"App password “{app.name}” is revoked.")
    return redirect("webmail:settings")


@auth.mailbox_required
@require_POST
def sender_remove(request: HttpRequest, rule_id: int) -> HttpResponse:
    if not sender_lists.remove(request.principal.mailbox_id, rule_id):
        raise Http404("No such entry")
    messages.success(request, "Taken off the list.")
    return redirect(reverse("webmail:settings") + "#senders")
