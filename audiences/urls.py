"""The audiences app's routes: the customer and account pages, and its REST API (viewsets the project router
registers, API_ROUTES, and the paths under /api/v1/, api_urlpatterns); config/urls.py includes them."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

from audiences import api, views

API_ROUTES: list[tuple[str, Any, str]] = [
    ("customers", api.CustomerViewSet, "customer"),
    ("accounts", api.AccountViewSet, "account"),
    ("sources", api.SourceViewSet, "source"),
]

urlpatterns: list[URLPattern] = [
    path("customers/", views.CustomerListView.as_view(), name="customer-list"),
    path("customers/<int:pk>/", views.CustomerDetailView.as_view(), name="customer-detail"),
    path("customers/<int:pk>/export/", views.CustomerExportView.as_view(), name="customer-export"),
    path("customers/<int:pk>/erase/", views.CustomerEraseView.as_view(), name="customer-erase"),
    path("customers/<int:pk>/test-flag/", views.CustomerTestFlagView.as_view(), name="customer-test-flag"),
    path("accounts/", views.AccountListView.as_view(), name="account-list"),
    path("accounts/<int:pk>/", views.AccountDetailView.as_view(), name="account-detail"),
]

api_urlpatterns: list[URLPattern] = [
    path("customers/<int:customer_pk>/events/", api.CustomerEventList.as_view(), name="api-customer-events"),
]
