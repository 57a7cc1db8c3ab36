"""Routes of the outbound layer: the destination pages, and the destination API's viewset (API_ROUTES), which
config.urls registers on the shared `/api/v1/` router so its URL names stay in the `api` namespace."""

from django.urls import URLPattern, path
from rest_framework.viewsets import ViewSetMixin

from integrations.destinations import api, views

urlpatterns: list[URLPattern] = [
    path("integrations/destinations/", views.DestinationListView.as_view(), name="destination-list"),
    path("integrations/destinations/new/", views.DestinationCreateView.as_view(), name="destination-create"),
    path("integrations/destinations/<int:pk>/", views.DestinationDetailView.as_view(), name="destination-detail"),
    path("integrations/destinations/<int:pk>/edit/", views.DestinationEditView.as_view(), name="destination-edit"),
]

API_ROUTES: list[tuple[str, type[ViewSetMixin], str]] = [("destinations", api.DestinationViewSet, "destination")]
