"""Routes of the intake layer: sources, tracking plans, the event debugger, ingestion errors, imports, and the
Segment-compatible tracking API (`/v1/<call>`)."""

from django.urls import URLPattern, path

from integrations.tracking import endpoint, views

urlpatterns: list[URLPattern] = [
    path("integrations/sources/", views.SourceListView.as_view(), name="source-list"),
    path("integrations/sources/<int:pk>/rotate/", views.SourceRotateView.as_view(), name="source-rotate"),
    path("integrations/tracking-plans/", views.TrackingPlanListView.as_view(), name="tracking-plan-list"),
    path("integrations/tracking-plans/<int:pk>/", views.TrackingPlanDetailView.as_view(), name="tracking-plan-detail"),
    path(
        "integrations/tracking-plans/<int:pk>/violations/",
        views.ViolationListView.as_view(),
        name="tracking-plan-violations",
    ),
    path("integrations/debugger/", views.EventDebuggerView.as_view(), name="event-debugger"),
    path("integrations/debugger/feed/", views.EventDebuggerFeedView.as_view(), name="event-debugger-feed"),
    path("integrations/errors/", views.IngestionErrorListView.as_view(), name="ingestion-error-list"),
    path("integrations/imports/", views.ImportListView.as_view(), name="import-list"),
    path("integrations/imports/<int:pk>/progress/", views.ImportProgressView.as_view(), name="import-progress"),
    path("integrations/imports/<int:pk>/rejected.csv", views.ImportRejectedCsvView.as_view(), name="import-rejected"),
    path("v1/<str:route>", endpoint.tracking_call, name="tracking-call"),
]
