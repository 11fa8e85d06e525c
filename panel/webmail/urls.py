"""URLs of webmail, under /webmail/."""

from __future__ import annotations

from django.urls import path

from panel.webmail import views

app_name = "webmail"

urlpatterns = [
    path("", views.index, name="index"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("folders/", views.folder_manage, name="folders"),
    path("folders/<int:folder_id>/", views.folder_view, name="folder"),
    path("folders/<int:folder_id>/act/", views.act, name="act"),
    path("folders/<int:folder_id>/empty/", views.empty, name="empty"),
    path("folders/<int:folder_id>/read-all/", views.mark_all_read, name="read_all"),
    path("folders/<int:folder_id>/rename/", views.folder_rename, name="folder_rename"),
    path("folders/<int:folder_id>/delete/", views.folder_delete, name="folder_delete"),
    path("folders/<int:folder_id>/<int:uid>/", views.message_view, name="message"),
    path("folders/<int:folder_id>/<int:uid>/body/", views.message_body, name="body"),
    path("folders/<int:folder_id>/<int:uid>/original/", views.original, name="original"),
    path("folders/<int:folder_id>/<int:uid>/parts/<str:path>/", views.attachment,
         name="attachment"),
    path("inline/", views.inline_part, {"token": ""}, name="inline_prefix"),
    path("inline/<str:token>/", views.inline_part, name="inline"),
    path("compose/", views.compose_view, name="compose"),
    path("compose/autosave/", views.autosave, name="autosave"),
    path("compose/discard/", views.discard, name="discard"),
    path("suggest/", views.suggest, name="suggest"),
    path("poll/", views.poll, name="poll"),
    path("settings/", views.settings_view, name="settings"),
    path("settings/password/", views.password_change, name="password"),
    path("settings/app-passwords/", views.app_password_add, name="app_password_add"),
    path("settings/app-passwords/<int:app_id>/revoke/", views.app_password_revoke,
         name="app_password_revoke"),
    path("settings/senders/", views.sender_add, name="sender_add"),
    path("settings/senders/<int:rule_id>/remove/", views.sender_remove, name="sender_remove"),
]
