"""Well-known URLs mail clients ask for their settings."""

from __future__ import annotations

from django.urls import path

from panel.autoconfig import views

urlpatterns = [
    path(".well-known/autoconfig/mail/config-v1.1.xml", views.autoconfig,
         name="autoconfig_wellknown"),
    path("mail/config-v1.1.xml", views.autoconfig, name="autoconfig_mail"),
    path("autodiscover/autodiscover.xml", views.autodiscover, name="autodiscover"),
    path("Autodiscover/Autodiscover.xml", views.autodiscover),
]
