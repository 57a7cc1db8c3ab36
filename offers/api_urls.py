"""URLs of the cancellation session API (under /api/v1/cancellation-sessions/); the trailing slash is optional."""

from django.urls import re_path

from offers import api

TOKEN = r"(?P<token>[A-Za-z0-9_-]{16,64})"

urlpatterns = [
    re_path(r"^$", api.SessionStartView.as_view(), name="api-cancellation-session-start"),
    re_path(rf"^{TOKEN}/?$", api.SessionDetailView.as_view(), name="api-cancellation-session"),
    re_path(rf"^{TOKEN}/reason/?$", api.SessionReasonView.as_view(), name="api-cancellation-session-reason"),
    re_path(rf"^{TOKEN}/accept/?$", api.SessionAcceptView.as_view(), name="api-cancellation-session-accept"),
    re_path(rf"^{TOKEN}/decline/?$", api.SessionDeclineView.as_view(), name="api-cancellation-session-decline"),
    re_path(
        rf"^{TOKEN}/confirm-cancel/?$",
        api.SessionConfirmCancelView.as_view(),
        name="api-cancellation-session-confirm-cancel",
    ),
]
