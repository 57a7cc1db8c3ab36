"""The segments app's routes: segment, live audience and computed trait pages, and its REST API (viewsets the
project router registers, API_ROUTES, and the paths under /api/v1/, api_urlpatterns); config/urls.py includes
them."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

from segments import api, audience_views, views
from segments.traits import api as trait_api
from segments.traits import views as trait_views

API_ROUTES: list[tuple[str, Any, str]] = [
    ("segments", api.SegmentViewSet, "segment"),
    ("custom-properties", api.CustomPropertyViewSet, "custom-property"),
    ("computed-traits", trait_api.ComputedTraitViewSet, "computed-trait"),
]

urlpatterns: list[URLPattern] = [
    path("segments/", views.SegmentListView.as_view(), name="segment-list"),
    path("segments/new/", views.SegmentCreateView.as_view(), name="segment-create"),
    path("segments/<int:pk>/", views.SegmentDetailView.as_view(), name="segment-detail"),
    path("segments/<int:pk>/edit/", views.SegmentEditView.as_view(), name="segment-edit"),
    path(
        "segments/<int:pk>/versions/<int:number>/restore/", views.SegmentRestoreView.as_view(), name="segment-restore"
    ),
    path("segments/<int:pk>/audience/", audience_views.SegmentAudienceView.as_view(), name="segment-audience"),
    path("segments/<int:pk>/live/", audience_views.SegmentLiveView.as_view(), name="segment-live"),
    path("computed-traits/", trait_views.ComputedTraitListView.as_view(), name="computed-trait-list"),
    path("computed-traits/new/", trait_views.ComputedTraitCreateView.as_view(), name="computed-trait-create"),
    path("computed-traits/<int:pk>/", trait_views.ComputedTraitDetailView.as_view(), name="computed-trait-detail"),
    path("computed-traits/<int:pk>/edit/", trait_views.ComputedTraitEditView.as_view(), name="computed-trait-edit"),
    path(
        "computed-traits/<int:pk>/delete/", trait_views.ComputedTraitDeleteView.as_view(), name="computed-trait-delete"
    ),
]

api_urlpatterns: list[URLPattern] = [
    path("segments/<int:pk>/history/", api.SegmentHistoryView.as_view(), name="api-segment-history"),
    path("segments/<int:pk>/changes/", api.SegmentChangesView.as_view(), name="api-segment-changes"),
    path("segments/<int:pk>/live/", api.SegmentLiveView.as_view(), name="api-segment-live"),
]
