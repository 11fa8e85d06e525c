"""URLs of the customer pages."""

from __future__ import annotations

from django.urls import path

from panel.customers import views

urlpatterns = [
    path("", views.home, name="home"),
    path("domains/add/", views.domain_add, name="domain_add"),
    path("domains/<int:pk>/", views.domain_detail, name="domain_detail"),
    path("domains/<int:pk>/dns/", views.domain_dns, name="domain_dns"),
    path("domains/<int:pk>/verify/", views.domain_verify, name="domain_verify"),
    path("domains/<int:pk>/remove/", views.domain_remove, name="domain_remove"),
    path("domains/<int:pk>/catch-all/", views.catch_all, name="catch_all"),
    path("domains/<int:pk>/sender-checks/", views.sender_checks, name="sender_checks"),
    path("domains/<int:pk>/spam-filter/", views.spam_filter, name="spam_filter"),
    path("domains/<int:pk>/refused/", views.refused_mail, name="refused_mail"),
    path("domains/<int:pk>/mailboxes/add/", views.mailbox_add, name="mailbox_add"),
    path("domains/<int:pk>/aliases/add/", views.alias_add, name="alias_add"),
    path("mailboxes/<int:pk>/", views.mailbox_detail, name="mailbox_detail"),
    path("mailboxes/<int:pk>/edit/", views.mailbox_edit, name="mailbox_edit"),
    path("mailboxes/<int:pk>/password/", views.mailbox_password, name="mailbox_password"),
    path("mailboxes/<int:pk>/toggle/", views.mailbox_toggle, name="mailbox_toggle"),
    path("mailboxes/<int:pk>/pop3/", views.mailbox_pop3, name="mailbox_pop3"),
    path("mailboxes/<int:pk>/forward/", views.mailbox_forward, name="mailbox_forward"),
    path("mailboxes/<int:pk>/delete/", views.mailbox_delete, name="mailbox_delete"),
    path("mailboxes/<int:pk>/setup/", views.mailbox_setup, name="mailbox_setup"),
    path("mailboxes/<int:pk>/mobileconfig/", views.mailbox_mobileconfig,
         name="mailbox_mobileconfig"),
    path("mailboxes/<int:pk>/app-passwords/", views.app_password_add, name="app_password_add"),
    path("mailboxes/<int:pk>/app-passwords/<int:app_pk>/revoke/", views.app_password_revoke,
         name="app_password_revoke"),
    path("aliases/<int:pk>/edit/", views.alias_edit, name="alias_edit"),
    path("aliases/<int:pk>/delete/", views.alias_delete, name="alias_delete"),
]
