"""URL map: staff UI pages, the REST API under /api/v1/, its schema and docs, and the admin back office."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from audiences import api as audiences_api
from audiences import computed_trait_api, computed_trait_views
from audiences import views as audiences_views
from config.views import AuditLogView, HomeView, SignInLockoutsView, SignInView
from integrations import urls as integrations_urls
from offers import api as offers_api
from offers import staff_api as offers_staff_api
from segments import api as segments_api
from segments import audience_views
from segments import views as segments_views
from trials.urls import API_ROUTES as TRIALS_API_ROUTES

handler400 = "config.request_guard.bad_request"
handler404 = "config.request_guard.page_not_found"
handler500 = "config.request_guard.server_error"

router = DefaultRouter()
router.register("customers", audiences_api.CustomerViewSet, basename="customer")
router.register("accounts", audiences_api.AccountViewSet, basename="account")
router.register("sources", audiences_api.SourceViewSet, basename="source")
router.register("segments", segments_api.SegmentViewSet, basename="segment")
router.register("custom-properties", segments_api.CustomPropertyViewSet, basename="custom-property")
router.register("computed-traits", computed_trait_api.ComputedTraitViewSet, basename="computed-trait")
for prefix, viewset, basename in integrations_urls.API_ROUTES:
    router.register(prefix, viewset, basename=basename)
for prefix, viewset, basename in TRIALS_API_ROUTES:
    router.register(prefix, viewset, basename=basename)
for prefix, viewset, basename in offers_staff_api.STAFF_ROUTES:
    router.register(prefix, viewset, basename=basename)

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    path("login/", SignInView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", AuditLogView.as_view(), name="audit-log"),
    path("sign-in-lockouts/", SignInLockoutsView.as_view(), name="sign-in-lockouts"),
    path("customers/", audiences_views.CustomerListView.as_view(), name="customer-list"),
    path("customers/<int:pk>/", audiences_views.CustomerDetailView.as_view(), name="customer-detail"),
    path("customers/<int:pk>/export/", audiences_views.CustomerExportView.as_view(), name="customer-export"),
    path("customers/<int:pk>/erase/", audiences_views.CustomerEraseView.as_view(), name="customer-erase"),
    path("accounts/", audiences_views.AccountListView.as_view(), name="account-list"),
    path("accounts/<int:pk>/", audiences_views.AccountDetailView.as_view(), name="account-detail"),
    path("segments/", segments_views.SegmentListView.as_view(), name="segment-list"),
    path("segments/new/", segments_views.SegmentCreateView.as_view(), name="segment-create"),
    path("segments/<int:pk>/", segments_views.SegmentDetailView.as_view(), name="segment-detail"),
    path("segments/<int:pk>/edit/", segments_views.SegmentEditView.as_view(), name="segment-edit"),
    path(
        "segments/<int:pk>/versions/<int:number>/restore/",
        segments_views.SegmentRestoreView.as_view(),
        name="segment-restore",
    ),
    path("segments/<int:pk>/audience/", audience_views.SegmentAudienceView.as_view(), name="segment-audience"),
    path("segments/<int:pk>/live/", audience_views.SegmentLiveView.as_view(), name="segment-live"),
    path("computed-traits/", computed_trait_views.ComputedTraitListView.as_view(), name="computed-trait-list"),
    path("computed-traits/new/", computed_trait_views.ComputedTraitCreateView.as_view(), name="computed-trait-create"),
    path(
        "computed-traits/<int:pk>/",
        computed_trait_views.ComputedTraitDetailView.as_view(),
        name="computed-trait-detail",
    ),
    path(
        "computed-traits/<int:pk>/edit/",
        computed_trait_views.ComputedTraitEditView.as_view(),
        name="computed-trait-edit",
    ),
    path(
        "computed-traits/<int:pk>/delete/",
        computed_trait_views.ComputedTraitDeleteView.as_view(),
        name="computed-trait-delete",
    ),
    path("", include("trials.urls")),
    path("", include("integrations.urls")),
    path("offers/", include("offers.urls")),
    path("cancel/", include("offers.hosted_urls")),
    path("api/v1/cancellation-sessions/", include("offers.api_urls")),
    path(
        "api/v1/cancellation-reports/",
        offers_api.CancellationReportView.as_view(),
        name="api-cancellation-reports",
    ),
    path("api/v1/", include((router.urls, "api"), namespace="api")),
    path("api/v1/segments/<int:pk>/history/", segments_api.SegmentHistoryView.as_view(), name="api-segment-history"),
    path("api/v1/segments/<int:pk>/changes/", segments_api.SegmentChangesView.as_view(), name="api-segment-changes"),
    path("api/v1/segments/<int:pk>/live/", segments_api.SegmentLiveView.as_view(), name="api-segment-live"),
    path(
        "api/v1/customers/<int:customer_pk>/events/",
        audiences_api.CustomerEventList.as_view(),
        name="api-customer-events",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script from a URL, not inline, as the CSP requires.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
