"""URLs of the operator's dashboard."""

from __future__ import annotations

from django.urls import path, register_converter

from panel.dashboard import outbox, views

register_converter(outbox.KeyConverter, "outboxkey")

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/<int:pk>/limits/", views.customer_limits, name="customer_limits"),
    path("outbox/", outbox.outbox, name="outbox"),
    path("outbox/clear/", outbox.outbox_clear, name="outbox_clear"),
    path("outbox/<outboxkey:key>/", outbox.outbox_message, name="outbox_message"),
]
