"""Staff pages of the offers app (under /offers/)."""

from django.urls import path

from offers import views

app_name = "offers"

urlpatterns = [
    path("", views.OfferListView.as_view(), name="offer-list"),
    path("new/", views.OfferEditView.as_view(), name="offer-create"),
    path("<int:pk>/edit/", views.OfferEditView.as_view(), name="offer-edit"),
    path("reasons/new/", views.ReasonEditView.as_view(), name="reason-create"),
    path("reasons/<int:pk>/edit/", views.ReasonEditView.as_view(), name="reason-edit"),
    path("flows/new/", views.FlowEditView.as_view(), name="flow-create"),
    path("flows/<int:pk>/edit/", views.FlowEditView.as_view(), name="flow-edit"),
    path("rules/", views.RuleListView.as_view(), name="rule-list"),
    path("rules/offer/new/", views.OfferRuleEditView.as_view(), name="offer-rule-create"),
    path("rules/offer/<int:pk>/edit/", views.OfferRuleEditView.as_view(), name="offer-rule-edit"),
    path("rules/flow/new/", views.FlowRuleEditView.as_view(), name="flow-rule-create"),
    path("rules/flow/<int:pk>/edit/", views.FlowRuleEditView.as_view(), name="flow-rule-edit"),
    path("rules/<str:kind>/<int:pk>/move/", views.RuleMoveView.as_view(), name="rule-move"),
    path("sessions/", views.SessionListView.as_view(), name="session-list"),
    path("sessions/export.csv", views.SessionExportView.as_view(), name="session-export"),
    path("reports/", views.ReportView.as_view(), name="report"),
    path("reports/<str:table>.csv", views.ReportExportView.as_view(), name="report-export"),
]
