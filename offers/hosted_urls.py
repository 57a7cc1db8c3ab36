"""The public hosted cancellation page (/cancel/<session token>/)."""

from django.urls import path

from offers.hosted import HostedCancelView

urlpatterns = [path("<str:token>/", HostedCancelView.as_view(), name="offers-hosted")]
