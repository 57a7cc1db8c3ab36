"""Destination pages: the list with each destination's health, the create/edit form, and the detail page with
settings, signing secret, the delivery log filtered by status, replay, pause/resume and secret rotation.
Thin views over integrations.destinations.services (writes) and .selectors (reads)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.generic import TemplateView

from config.facts import FactKind
from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from integrations.destinations import selectors
from integrations.destinations.filters import DestinationDeliveryFilter
from integrations.destinations.forms import DestinationForm
from integrations.destinations.models import Destination, DestinationDelivery
from integrations.destinations.payloads import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, segment_batch_url
from integrations.destinations.services import (
    DestinationInvalid,
    ReplayRefused,
    destination_create,
    destination_delivery_replay,
    destination_pause,
    destination_resume,
    destination_rotate_secret,
    destination_update,
)


def _secret_session_key(destination: Destination) -> str:
    return f"destination_secret_shown:{destination.pk}"


def _show_secret_once(request: HttpRequest, destination: Destination) -> None:
    """Let the next view of the destination show its signing secret in full, once (after creation or rotation)."""
    request.session[_secret_session_key(destination)] = True


class DestinationListView(StaffPermissionMixin, TemplateView):
    """Every destination with its health: success rate over 24 h, last success and failure, what waits."""

    template_name = "integrations/destination_list.html"
    required_permissions = ("integrations.view_destination",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        destinations = list(Destination.objects.order_by("name"))
        health = selectors.destination_health([destination.pk for destination in destinations])
        return {
            **super().get_context_data(**kwargs),
            "rows": [(destination, health[destination.pk]) for destination in destinations],
        }


class DestinationEditView(StaffPermissionMixin, TemplateView):
    """Create (no pk) or edit a destination; a refused URL or bad choice comes back as a field error."""

    template_name = "integrations/destination_form.html"
    required_permissions = ("integrations.change_destination",)

    def _destination(self) -> Destination | None:
        return get_object_or_404(Destination, pk=self.kwargs["pk"]) if "pk" in self.kwargs else None

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        destination = self._destination()
        context = super().get_context_data(**kwargs)
        context.setdefault("form", DestinationForm(instance=destination))
        context["destination"] = destination
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        destination = self._destination()
        form = DestinationForm(request.POST, instance=destination)
        if form.is_valid():
            data = form.cleaned_data
            values = {"name": data["name"], "url": data["url"], "kinds": data["kinds"],
                        "consent_category": data["consent_category"], "write_key": data["write_key"]}  # fmt: skip
            try:
                if destination is None:
                    destination = destination_create(kind=data["kind"], **values)
                    _show_secret_once(request, destination)
                    messages.success(request, "Destination created. Give its signing secret to the receiver.")
                else:
                    destination = destination_update(destination=destination, **values)
                    messages.success(request, "Destination saved.")
            except DestinationInvalid as invalid:
                form.add_error(invalid.field if invalid.field in form.fields else None, invalid.message)
            else:
                return HttpResponseRedirect(reverse("destination-detail", kwargs={"pk": destination.pk}))
        return self.render_to_response(self.get_context_data(form=form), status=400)


class DestinationCreateView(DestinationEditView):
    required_permissions = ("integrations.add_destination",)


class DestinationDetailView(StaffPermissionMixin, TemplateView):
    """Settings, health and the delivery log; managers pause, resume, rotate the secret and replay here."""

    template_name = "integrations/destination_detail.html"
    required_permissions = ("integrations.view_destination", "integrations.view_destinationdelivery")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        destination = get_object_or_404(Destination, pk=self.kwargs["pk"])
        filters = DestinationDeliveryFilter(self.request.GET, queryset=selectors.destination_deliveries(destination))
        # The secret is shown in full once, right after it was made (creation or rotation); afterwards only its
        # start, so an unattended screen or a shoulder never leaks it. A lost secret is replaced by rotating.
        show_secret = bool(self.request.session.pop(_secret_session_key(destination), False))
        return {
            **super().get_context_data(**kwargs),
            "destination": destination,
            "show_secret": show_secret and self.request.user.has_perm("integrations.change_destination"),
            "secret_start": destination.signing_secret[:10],
            "health": selectors.destination_health([destination.pk])[destination.pk],
            "kind_labels": [FactKind(kind).label for kind in destination.kinds if kind in FactKind.values],
            "batch_url": segment_batch_url(destination.url),
            "signature_headers": (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER),
            "filters": filters,
            "status_choices": DestinationDelivery.Status.choices,
            "selected_status": self.request.GET.get("status", ""),
            "page": paginate_for_ui(self.request, filters.qs, ordering="-id", size=50),
            "replayable": (DestinationDelivery.Status.DELIVERED, DestinationDelivery.Status.FAILED),
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm("integrations.change_destination"):
            raise PermissionDenied("Your role may not change destinations.")
        destination = get_object_or_404(Destination, pk=kwargs["pk"])
        action = request.POST.get("action", "")
        if action == "pause":
            destination_pause(destination=destination)
            messages.success(request, "Paused: new deliveries wait until you resume.")
        elif action == "resume":
            destination_resume(destination=destination)
            messages.success(request, "Resumed: waiting deliveries are being sent.")
        elif action == "rotate":
            destination_rotate_secret(destination=destination)
            _show_secret_once(request, destination)
            messages.success(request, "New signing secret. The previous one keeps signing alongside for 24 hours.")
        elif action == "replay":
            delivery_pk = request.POST.get("delivery", "")
            if not delivery_pk.isdigit():
                return HttpResponse("Name the delivery to replay.", status=400)
            delivery = get_object_or_404(DestinationDelivery, pk=int(delivery_pk), destination=destination)
            try:
                destination_delivery_replay(delivery=delivery)
            except ReplayRefused as refused:
                messages.error(request, str(refused))
            else:
                messages.success(request, f"Delivery {delivery.idempotency_key} queued again.")
        else:
            return HttpResponse("Unknown action.", status=400)
        return HttpResponseRedirect(reverse("destination-detail", kwargs={"pk": destination.pk}))
