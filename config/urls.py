"""URL map, the project's composition root: the kernel's own pages (home, sign-in, audit log), each app's routes
(`<app>/urls.py`, included as they are), the REST API under /api/v1/ on one router that every app's `API_ROUTES`
fill, its schema and docs, and the admin back office. It is the one module of `config` that names the apps above
the kernel, which is why the import contract lists it among the composition roots."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from audiences import urls as audiences_urls
from config.views import AuditLogView, HomeView, SignInLockoutsView, SignInView
from integrations import urls as integrations_urls
from offers import api as offers_api
from offers import staff_api as offers_staff_api
from segments import urls as segments_urls
from trials import urls as trials_urls

handler400 = "config.request_guard.bad_request"
handler404 = "config.request_guard.page_not_found"
handler500 = "config.request_guard.server_error"

router = DefaultRouter()
for prefix, viewset, basename in [
    *audiences_urls.API_ROUTES,
    *segments_urls.API_ROUTES,
    *trials_urls.API_ROUTES,
    *integrations_urls.API_ROUTES,
    *offers_staff_api.STAFF_ROUTES,
]:
    router.register(prefix, viewset, basename=basename)

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    path("login/", SignInView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", AuditLogView.as_view(), name="audit-log"),
    path("sign-in-lockouts/", SignInLockoutsView.as_view(), name="sign-in-lockouts"),
    path("", include("audiences.urls")),
    path("", include("segments.urls")),
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
    path("api/v1/", include(segments_urls.api_urlpatterns)),
    path("api/v1/", include(audiences_urls.api_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script from a URL, not inline, as the CSP requires.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
