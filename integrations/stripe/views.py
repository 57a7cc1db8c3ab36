"""The Stripe webhook endpoint, the Stripe integration page (health, delivery log, replay, unlinked) and the billing
settings page (workspace currency, currency rates, account mapping)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView

from audiences.models import Customer
from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from integrations.stripe.billing_settings import billing_settings_update, currency_rate_delete, currency_rate_set
from integrations.stripe.currency import billing_settings
from integrations.stripe.customers import stripe_customer_link
from integrations.stripe.event_models import StripeEvent, StripeWebhookDelivery
from integrations.stripe.forms import BillingSettingsForm, CurrencyRateForm
from integrations.stripe.models import CurrencyRate, StripeCustomer
from integrations.stripe.mrr import mrr_by_unconverted_currency
from integrations.stripe.processing import stripe_events_replay_waiting
from integrations.stripe.webhooks import WebhookRejected, stripe_event_replay, webhook_receive


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """POST /webhooks/stripe/: 200 once stored (processing follows in a task) or ignored (a type Trialloop does
    not use), 4xx with the reason if refused."""
    try:
        receipt = webhook_receive(payload=request.body, headers=dict(request.headers))
    except WebhookRejected as rejection:
        return JsonResponse({"error": rejection.message}, status=rejection.status)
    answer: dict[str, Any] = {
        "received": True,
        "event": receipt.event_id,
        "duplicate": receipt.duplicate,
        "ignored": bool(receipt.ignored_reason),
    }
    if receipt.ignored_reason:
        answer["reason"] = receipt.ignored_reason
    return JsonResponse(answer)


class StripeOverviewView(StaffPermissionMixin, TemplateView):
    """Webhook health, the delivery log with replay, and Stripe customers waiting to be linked."""

    template_name = "integrations/stripe.html"
    admin_only = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        day_ago = timezone.now() - timedelta(hours=24)
        health = StripeWebhookDelivery.objects.aggregate(
            last=Max("received_at"),
            total_24h=Count("id", filter=Q(received_at__gte=day_ago)),
            rejected_24h=Count("id", filter=Q(received_at__gte=day_ago, status_code__gte=400)),
            ignored_24h=Count("id", filter=Q(received_at__gte=day_ago, outcome=StripeWebhookDelivery.Outcome.IGNORED)),
        )
        statuses = dict(
            StripeEvent.objects.values_list("status").annotate(count=Count("id")).values_list("status", "count")
        )
        latest = StripeEvent.objects.filter(status=StripeEvent.Status.PROCESSED).order_by("-processed_at").first()
        lag = (latest.processed_at - latest.created) if latest and latest.processed_at else None
        events = StripeEvent.objects.all()
        status = self.request.GET.get("status", "")
        if status:
            events = events.filter(status=status)
        return {
            **super().get_context_data(**kwargs),
            "health": health,
            "statuses": statuses,
            "lag": lag,
            "status_choices": StripeEvent.Status.choices,
            "selected_status": status,
            "page": paginate_for_ui(self.request, events, ordering="-id", size=25),
            "deliveries": StripeWebhookDelivery.objects.select_related("event")[:25],
            "unlinked": StripeCustomer.objects.filter(customer__isnull=True, deleted=False).order_by("-created_at")[
                :100
            ],
        }


class StripeEventReplayView(StaffPermissionMixin, TemplateView):
    """Admins process a stored event again from its payload (after a fix, or to re-check a failure)."""

    admin_only = True
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        event = get_object_or_404(StripeEvent, pk=kwargs["pk"])
        stripe_event_replay(event=event)
        messages.success(request, f"Event {event.event_id} queued again.")
        return HttpResponseRedirect(reverse("stripe-overview"))


class StripeCustomerLinkView(StaffPermissionMixin, TemplateView):
    """Link an unlinked Stripe customer to the profile a person picked (by user id or email)."""

    admin_only = True
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        stripe_customer = get_object_or_404(StripeCustomer, pk=kwargs["pk"], customer__isnull=True)
        wanted = request.POST.get("profile", "").strip()
        matches = list(Customer.objects.filter(Q(user_id=wanted) | Q(email=wanted.lower()))[:2]) if wanted else []
        if len(matches) != 1:
            messages.error(
                request,
                f"“{wanted}” matches {len(matches)} profiles; give a user id or an email that matches exactly one.",
            )
            return HttpResponseRedirect(reverse("stripe-overview"))
        profile = matches[0]
        if profile.stripe_customer_id and profile.stripe_customer_id != stripe_customer.stripe_customer_id:
            messages.error(request, f"That profile is already linked to {profile.stripe_customer_id}.")
            return HttpResponseRedirect(reverse("stripe-overview"))
        stripe_customer_link(stripe_customer=stripe_customer, customer=profile, method=StripeCustomer.LinkMethod.MANUAL)
        replayed = stripe_events_replay_waiting(stripe_customer_id=stripe_customer.stripe_customer_id)
        messages.success(request, f"Linked to {profile}; {replayed} waiting events applied.")
        return HttpResponseRedirect(reverse("stripe-overview"))


class BillingSettingsView(StaffPermissionMixin, TemplateView):
    """The workspace currency, the rates that convert other currencies into it, and how a Stripe customer maps
    to an account. Admins only; every change is audited and takes effect at once
    (integrations.stripe.billing_settings)."""

    template_name = "integrations/billing_settings.html"
    admin_only = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        settings = billing_settings()
        return {
            **super().get_context_data(**kwargs),
            "settings_form": kwargs.get("settings_form") or BillingSettingsForm(instance=settings),
            "rate_form": kwargs.get("rate_form") or CurrencyRateForm(workspace_currency=settings.currency),
            "rates": list(CurrencyRate.objects.all()),
            "workspace_currency": settings.currency,
            "unconverted": sorted(mrr_by_unconverted_currency().items()),
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        settings = billing_settings()
        which = request.POST.get("form")
        if which == "settings":
            settings_form = BillingSettingsForm(request.POST, instance=billing_settings())
            if not settings_form.is_valid():
                return self.render_to_response(self.get_context_data(settings_form=settings_form), status=400)
            billing_settings_update(data={f: settings_form.cleaned_data[f] for f in BillingSettingsForm.Meta.fields})
            messages.success(request, "Billing settings saved.")
        elif which == "rate":
            rate_form = CurrencyRateForm(request.POST, workspace_currency=settings.currency)
            if not rate_form.is_valid():
                return self.render_to_response(self.get_context_data(rate_form=rate_form), status=400)
            row = currency_rate_set(currency=rate_form.cleaned_data["currency"], rate=rate_form.cleaned_data["rate"])
            messages.success(request, f"Rate saved: {row}. MRR in {row.currency.upper()} is converted with it.")
        elif which == "delete-rate":
            currency = request.POST.get("currency", "")
            currency_rate_delete(currency=currency)
            messages.success(request, f"Rate of {currency.upper()} removed: its MRR is shown apart again.")
        else:
            return JsonResponse({"error": "Unknown form; expected settings, rate or delete-rate."}, status=400)
        return HttpResponseRedirect(reverse("billing-settings"))
