"""URL map: staff UI pages, the REST API under /api/v1/, its schema and docs, and the admin back office."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from audiences import urls as audiences_urls
from config.views import AuditLogView, HomeView, SignInLockoutsView, SignInView
from integrations import api as integrations_api
from integrations import destination_views, stripe_views, tracking
from integrations import views as integrations_views
from offers import api as offers_api
from offers import staff_api as offers_staff_api
from segments import urls as segments_urls
from trials import api as trials_api
from trials import email_views, in_app_api, measurement_api, measurement_views, play_api, play_views
from trials import views as trials_views

handler400 = "config.request_guard.bad_request"
handler404 = "config.request_guard.page_not_found"
handler500 = "config.request_guard.server_error"

router = DefaultRouter()
for prefix, viewset, basename in [*audiences_urls.API_ROUTES, *segments_urls.API_ROUTES]:
    router.register(prefix, viewset, basename=basename)
router.register("subscriptions", trials_api.SubscriptionViewSet, basename="subscription")
router.register("trials", trials_api.TrialViewSet, basename="trial")
router.register("destinations", integrations_api.DestinationViewSet, basename="destination")
router.register("alerts", play_api.AlertViewSet, basename="alert")
for prefix, viewset, basename in offers_staff_api.STAFF_ROUTES:
    router.register(prefix, viewset, basename=basename)

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    path("login/", SignInView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", AuditLogView.as_view(), name="audit-log"),
    path("sign-in-lockouts/", SignInLockoutsView.as_view(), name="sign-in-lockouts"),
    path("", include("audiences.urls")),
    path("", include("segments.urls")),
    path("trials/", trials_views.TrialListView.as_view(), name="trial-list"),
    path("trials/emails/", email_views.TemplateListView.as_view(), name="email-template-list"),
    path("trials/emails/new/", email_views.TemplateCreateView.as_view(), name="email-template-create"),
    path("trials/emails/settings/", email_views.EmailSettingsView.as_view(), name="email-settings"),
    path("trials/emails/<int:pk>/", email_views.TemplatePreviewView.as_view(), name="email-template-preview"),
    path(
        "trials/emails/<int:pk>/duplicate/",
        email_views.TemplateDuplicateView.as_view(),
        name="email-template-duplicate",
    ),
    path("trials/emails/<int:pk>/delete/", email_views.TemplateDeleteView.as_view(), name="email-template-delete"),
    path("trials/emails/<int:pk>/edit/", email_views.TemplateEditView.as_view(), name="email-template-edit"),
    path("emails/unsubscribe/<str:token>/", email_views.UnsubscribeView.as_view(), name="email-unsubscribe"),
    path("trials/loop/", trials_views.LoopBoardView.as_view(), name="trial-loop"),
    path("trials/settings/", trials_views.TrialSettingsView.as_view(), name="trial-settings"),
    path(
        "trials/settings/fit-rules/<int:pk>/delete/", trials_views.FitRuleDeleteView.as_view(), name="fit-rule-delete"
    ),
    path("subscriptions/", trials_views.SubscriptionListView.as_view(), name="subscription-list"),
    path("alerts/", play_views.AlertQueueView.as_view(), name="alert-queue"),
    path("alerts/team/", play_views.TeamLoadView.as_view(), name="alert-team"),
    path("alerts/away/", play_views.RepAwayView.as_view(), name="rep-away"),
    path("alerts/business-hours/", play_views.BusinessHoursView.as_view(), name="business-hours"),
    path("alerts/<int:pk>/", play_views.AlertDetailView.as_view(), name="alert-detail"),
    path("alerts/<int:pk>/<str:action>/", play_views.AlertActionView.as_view(), name="alert-action"),
    path("plays/", play_views.PlayListView.as_view(), name="play-list"),
    path("plays/new/", play_views.PlayEditView.as_view(), name="play-create"),
    path("plays/<int:pk>/edit/", play_views.PlayEditView.as_view(), name="play-edit"),
    path("measurement/cohorts/", measurement_views.report_view("cohorts"), name="measurement-cohorts"),
    path("measurement/activation/", measurement_views.report_view("activation"), name="measurement-activation"),
    path(
        "measurement/activation/make/",
        measurement_views.MakeActivationView.as_view(),
        name="measurement-make-activation",
    ),
    path("measurement/behaviour/", measurement_views.report_view("behaviour"), name="measurement-behaviour"),
    path("measurement/uplift/", measurement_views.report_view("uplift"), name="measurement-uplift"),
    path("measurement/retention/", measurement_views.report_view("retention"), name="measurement-retention"),
    path("integrations/sources/", integrations_views.SourceListView.as_view(), name="source-list"),
    path("integrations/sources/<int:pk>/rotate/", integrations_views.SourceRotateView.as_view(), name="source-rotate"),
    path("integrations/stripe/", stripe_views.StripeOverviewView.as_view(), name="stripe-overview"),
    path("integrations/stripe/billing/", stripe_views.BillingSettingsView.as_view(), name="billing-settings"),
    path(
        "integrations/stripe/events/<int:pk>/replay/",
        stripe_views.StripeEventReplayView.as_view(),
        name="stripe-event-replay",
    ),
    path(
        "integrations/stripe/customers/<int:pk>/link/",
        stripe_views.StripeCustomerLinkView.as_view(),
        name="stripe-customer-link",
    ),
    path("webhooks/stripe/", stripe_views.stripe_webhook, name="stripe-webhook"),
    path("integrations/tracking-plans/", integrations_views.TrackingPlanListView.as_view(), name="tracking-plan-list"),
    path(
        "integrations/tracking-plans/<int:pk>/",
        integrations_views.TrackingPlanDetailView.as_view(),
        name="tracking-plan-detail",
    ),
    path(
        "integrations/tracking-plans/<int:pk>/violations/",
        integrations_views.ViolationListView.as_view(),
        name="tracking-plan-violations",
    ),
    path("integrations/debugger/", integrations_views.EventDebuggerView.as_view(), name="event-debugger"),
    path("integrations/debugger/feed/", integrations_views.EventDebuggerFeedView.as_view(), name="event-debugger-feed"),
    path("integrations/errors/", integrations_views.IngestionErrorListView.as_view(), name="ingestion-error-list"),
    path("integrations/imports/", integrations_views.ImportListView.as_view(), name="import-list"),
    path(
        "integrations/imports/<int:pk>/progress/",
        integrations_views.ImportProgressView.as_view(),
        name="import-progress",
    ),
    path(
        "integrations/imports/<int:pk>/rejected.csv",
        integrations_views.ImportRejectedCsvView.as_view(),
        name="import-rejected",
    ),
    path("integrations/destinations/", destination_views.DestinationListView.as_view(), name="destination-list"),
    path(
        "integrations/destinations/new/",
        destination_views.DestinationCreateView.as_view(),
        name="destination-create",
    ),
    path(
        "integrations/destinations/<int:pk>/",
        destination_views.DestinationDetailView.as_view(),
        name="destination-detail",
    ),
    path(
        "integrations/destinations/<int:pk>/edit/",
        destination_views.DestinationEditView.as_view(),
        name="destination-edit",
    ),
    path("offers/", include("offers.urls")),
    path("cancel/", include("offers.hosted_urls")),
    path("api/v1/cancellation-sessions/", include("offers.api_urls")),
    path(
        "api/v1/cancellation-reports/",
        offers_api.CancellationReportView.as_view(),
        name="api-cancellation-reports",
    ),
    path("api/v1/in-app/<str:user_id>", in_app_api.InAppView.as_view(), name="api-in-app"),
    *[
        path(f"api/v1/measurement/{slug}/", measurement_api.report_api_view(slug), name=f"api-measurement-{slug}")
        for slug in measurement_views.REPORTS
    ],
    path("api/v1/", include((router.urls, "api"), namespace="api")),
    path("api/v1/", include(segments_urls.api_urlpatterns)),
    path("api/v1/", include(audiences_urls.api_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script from a URL, not inline, as the CSP requires.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("v1/<str:route>", tracking.tracking_call, name="tracking-call"),
]
