"""URLs of the operator's dashboard."""

from __future__ import annotations

from django.urls import path

from panel.dashboard import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/<int:pk>/limits/", views.customer_limits, name="customer_limits"),
]
