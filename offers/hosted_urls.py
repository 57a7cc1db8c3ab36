"""The public hosted cancellation page (/cancel/<signed token>/)."""

from django.urls import path

from offers.hosted import HostedCancelView

urlpatterns = [path("<str:signed>/", HostedCancelView.as_view(), name="offers-hosted")]
