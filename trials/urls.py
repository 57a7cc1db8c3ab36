"""The trials app's routes (loop, lifecycle emails, in-app prompts, plays and alerts, measurement), included by
config/urls.py at the root so every path and name stays as it was; API viewsets join the shared router through
API_ROUTES."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

from trials.loop import api as loop_api
from trials.loop import views as loop_views
from trials.measurement import api as measurement_api
from trials.measurement import views as measurement_views
from trials.messaging import in_app_api
from trials.messaging import views as email_views
from trials.plays import api as play_api
from trials.plays import views as play_views

#: (prefix, viewset, basename) registered on the shared /api/v1/ router by config/urls.py.
API_ROUTES: list[tuple[str, Any, str]] = [
    ("subscriptions", loop_api.SubscriptionViewSet, "subscription"),
    ("trials", loop_api.TrialViewSet, "trial"),
    ("alerts", play_api.AlertViewSet, "alert"),
]

urlpatterns: list[URLPattern] = [
    path("trials/", loop_views.TrialListView.as_view(), name="trial-list"),
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
    path("trials/loop/", loop_views.LoopBoardView.as_view(), name="trial-loop"),
    path("trials/settings/", loop_views.TrialSettingsView.as_view(), name="trial-settings"),
    path("trials/settings/fit-rules/<int:pk>/delete/", loop_views.FitRuleDeleteView.as_view(), name="fit-rule-delete"),
    path("subscriptions/", loop_views.SubscriptionListView.as_view(), name="subscription-list"),
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
    path("api/v1/in-app/<str:user_id>", in_app_api.InAppView.as_view(), name="api-in-app"),
    *[
        path(f"api/v1/measurement/{slug}/", measurement_api.report_api_view(slug), name=f"api-measurement-{slug}")
        for slug in measurement_views.REPORTS
    ],
]
