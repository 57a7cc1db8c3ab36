"""Integration pages: sources and their keys (admins), tracking plans, the live event debugger, ingestion
errors and historical imports. Thin views over the intake layer's services and selectors."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views import View
from django.views.generic import TemplateView

from audiences import services
from audiences.models import Event, Source
from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from integrations.tracking import selectors
from integrations.tracking.forms import (
    ImportForm,
    SourceCancelPageForm,
    SourceForm,
    SourcePlanForm,
    TrackingPlanEventForm,
    TrackingPlanForm,
)
from integrations.tracking.imports import ImportRejected, import_job_create, import_upload_store
from integrations.tracking.models import ImportJob, TrackingPlan, TrackingPlanEvent, TrackingPlanViolation
from integrations.tracking.plans import source_tracking_plan_set, tracking_plan_event_delete, tracking_plan_event_save
from integrations.tracking.tasks import run_import


class SourceListView(StaffPermissionMixin, TemplateView):
    """Sources with their key prefixes and who may embed their hosted cancellation page. POST creates a source
    (and shows its write key and secret key once), or with `action=cancel_page` sets the embedding origins of
    the source named by `source`."""

    template_name = "integrations/source_list.html"
    admin_only = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", SourceForm())
        sources = Source.objects.select_related("tracking_plan_link__plan").order_by("name")
        invalid: SourceCancelPageForm | None = kwargs.get("cancel_page_form")
        context["sources"] = [
            (source, invalid if invalid and invalid.source == source else SourceCancelPageForm(source=source))
            for source in sources
        ]
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.POST.get("action") == "cancel_page":
            return self._cancel_page(request)
        form = SourceForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        source, write_key = services.source_create(name=form.cleaned_data["name"], kind=form.cleaned_data["kind"])
        return _keys_page(request, source, write_key=write_key, secret_key=source.secret_key, created=True)

    def _cancel_page(self, request: HttpRequest) -> HttpResponse:
        source_pk = request.POST.get("source", "")
        if not source_pk.isdigit():
            return HttpResponse("Name the source.", status=400)
        source = get_object_or_404(Source, pk=int(source_pk))
        form = SourceCancelPageForm(request.POST, source=source)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(cancel_page_form=form), status=400)
        services.source_cancel_page_frame_ancestors_set(source=source, origins=form.cleaned_data["origins"])
        messages.success(request, f"Embedding of the cancellation page saved for “{source.name}”.")
        return HttpResponseRedirect(reverse("source-list"))


def _keys_page(
    request: HttpRequest, source: Source, *, write_key: str = "", secret_key: str = "", created: bool = False
) -> HttpResponse:
    """The one page that shows a source's new keys (after creation or a rotation), with how to use them. It is
    never cached, and the keys are in no other page."""
    response = render(
        request,
        "integrations/source_key.html",
        {
            "source": source,
            "write_key": write_key,
            "secret_key": secret_key,
            "created": created,
            "overlap_hours": int(services.SECRET_KEY_OVERLAP.total_seconds() // 3600),
            "sessions_url": request.build_absolute_uri("/api/v1/cancellation-sessions/"),
        },
    )
    add_never_cache_headers(response)
    return response


class SourceRotateView(StaffPermissionMixin, View):
    """Rotate a source's write key, or with `key=secret` its secret key (POST); the new key is shown once. The
    old write key stops working at once; the previous secret key works for SECRET_KEY_OVERLAP more."""

    admin_only = True
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        source = get_object_or_404(Source, pk=kwargs["pk"])
        if request.POST.get("key") == "secret":
            return _keys_page(request, source, secret_key=services.source_rotate_secret(source=source))
        return _keys_page(request, source, write_key=services.source_rotate_key(source=source))


class TrackingPlanListView(StaffPermissionMixin, TemplateView):
    template_name = "integrations/tracking_plan_list.html"
    required_permissions = ("integrations.view_trackingplan",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", TrackingPlanForm(initial={"identify_schema": {}}))
        context["plans"] = TrackingPlan.objects.prefetch_related("source_links__source").order_by("name")
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm("integrations.add_trackingplan"):
            raise PermissionDenied("Your role may not create tracking plans.")
        form = TrackingPlanForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        plan = form.save()
        return HttpResponseRedirect(reverse("tracking-plan-detail", kwargs={"pk": plan.pk}))


class TrackingPlanDetailView(StaffPermissionMixin, TemplateView):
    """One plan: its identify schema, its events (add, edit, remove), its sources and their modes."""

    template_name = "integrations/tracking_plan_detail.html"
    required_permissions = ("integrations.view_trackingplan",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        plan = get_object_or_404(TrackingPlan, pk=self.kwargs["pk"])
        events = list(plan.events.all())
        context.update(
            plan=plan,
            events=[
                (event, TrackingPlanEventForm(initial=_event_initial(event), prefix=f"e{event.pk}")) for event in events
            ],
            links=plan.source_links.select_related("source").order_by("source__name"),
            violations=selectors.violation_counts(plan),
        )
        context.setdefault("plan_form", TrackingPlanForm(instance=plan))
        context.setdefault("event_form", TrackingPlanEventForm(prefix="new"))
        context.setdefault("source_form", SourcePlanForm())
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm("integrations.change_trackingplan"):
            raise PermissionDenied("Your role may not change tracking plans.")
        plan = get_object_or_404(TrackingPlan, pk=kwargs["pk"])
        action = request.POST.get("action", "")
        if action == "plan":
            plan_form = TrackingPlanForm(request.POST, instance=plan)
            if not plan_form.is_valid():
                return self.render_to_response(self.get_context_data(plan_form=plan_form), status=400)
            plan_form.save()
            messages.success(request, "Plan saved.")
        elif action == "event":
            prefix = request.POST.get("prefix", "new")
            event_form = TrackingPlanEventForm(request.POST, prefix=prefix)
            if not event_form.is_valid():
                return self.render_to_response(self.get_context_data(event_form=event_form), status=400)
            tracking_plan_event_save(plan=plan, **event_form.cleaned_data)
            messages.success(request, f"Event “{event_form.cleaned_data['event_name']}” saved.")
        elif action == "delete_event":
            event_pk = request.POST.get("event", "")
            if not event_pk.isdigit():
                return HttpResponse("Name the event to remove.", status=400)
            event = get_object_or_404(TrackingPlanEvent, pk=int(event_pk), plan=plan)
            tracking_plan_event_delete(event=event)
            messages.success(request, f"Event “{event.event_name}” removed from the plan.")
        elif action == "source":
            source_form = SourcePlanForm(request.POST)
            if not source_form.is_valid():
                return self.render_to_response(self.get_context_data(source_form=source_form), status=400)
            mode = source_form.cleaned_data["mode"]
            source_tracking_plan_set(
                source=source_form.cleaned_data["source"], plan=None if mode == "disconnect" else plan, mode=mode
            )
            messages.success(request, "Source connection saved.")
        else:
            return HttpResponse("Unknown action.", status=400)
        return HttpResponseRedirect(reverse("tracking-plan-detail", kwargs={"pk": plan.pk}))


def _event_initial(event: TrackingPlanEvent) -> dict[str, Any]:
    return {
        "event_name": event.event_name,
        "description": event.description,
        "properties_schema": event.properties_schema,
    }


class ViolationListView(StaffPermissionMixin, TemplateView):
    template_name = "integrations/violation_list.html"
    required_permissions = ("integrations.view_trackingplanviolation",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        plan = get_object_or_404(TrackingPlan, pk=self.kwargs["pk"])
        violations = TrackingPlanViolation.objects.filter(plan=plan).select_related("source")
        event_name = self.request.GET.get("event", "")
        if event_name:
            violations = violations.filter(event_name=event_name)
        return {
            **super().get_context_data(**kwargs),
            "plan": plan,
            "event_name": event_name,
            "page": paginate_for_ui(self.request, violations, ordering="-id"),
        }


class IngestionErrorListView(StaffPermissionMixin, TemplateView):
    template_name = "integrations/ingestion_error_list.html"
    required_permissions = ("integrations.view_ingestionerror",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        errors = selectors.ingestion_errors()
        source = self.request.GET.get("source", "")
        if source.isdigit():
            errors = errors.filter(source_id=int(source))
        return {
            **super().get_context_data(**kwargs),
            "sources": Source.objects.order_by("name"),
            "selected_source": source,
            "page": paginate_for_ui(self.request, errors, ordering="-id"),
        }


class EventDebuggerView(StaffPermissionMixin, TemplateView):
    """The latest events as they arrive; the page polls EventDebuggerFeedView and prepends new rows."""

    template_name = "integrations/event_debugger.html"
    # A data-quality tool for admins and growth, not for every role that may read a timeline.
    required_permissions = ("audiences.view_event", "integrations.view_ingestionerror")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "sources": Source.objects.order_by("name"),
            "types": Event.Type.choices,
        }


class EventDebuggerFeedView(StaffPermissionMixin, View):
    required_permissions = ("audiences.view_event", "integrations.view_ingestionerror")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        def number(name: str) -> int:
            value = request.GET.get(name, "")
            return int(value) if value.isdigit() else 0

        events = selectors.debugger_events(
            source_id=number("source"),
            event_type=request.GET.get("type", ""),
            name=request.GET.get("name", "").strip(),
            after_id=number("after"),
        )
        for event in events:
            event["customer_url"] = reverse("customer-detail", kwargs={"pk": event["customer_id"]})
        return JsonResponse({"events": events})


class ImportListView(StaffPermissionMixin, TemplateView):
    """Imports with live progress; an upload starts one in the background."""

    template_name = "integrations/import_list.html"
    required_permissions = ("integrations.view_importjob",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", ImportForm())
        context["jobs"] = ImportJob.objects.select_related("source", "created_by")[:50]
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm("integrations.add_importjob"):
            raise PermissionDenied("Your role may not start imports.")
        form = ImportForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        path = import_upload_store(form.cleaned_data["file"])
        try:
            job = import_job_create(
                source=form.cleaned_data["source"],
                kind=form.cleaned_data["kind"],
                path=path,
                original_name=form.cleaned_data["file"].name,
                created_by=request.user,
            )
        except ImportRejected as error:
            path.unlink(missing_ok=True)
            form.add_error("file", str(error))
            return self.render_to_response(self.get_context_data(form=form), status=400)
        transaction.on_commit(lambda: run_import.delay(job.pk))
        messages.success(request, f"Import of {job.original_name} started: {job.total_rows:,} rows.")
        return HttpResponseRedirect(reverse("import-list"))


class ImportProgressView(StaffPermissionMixin, View):
    required_permissions = ("integrations.view_importjob",)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        job = get_object_or_404(ImportJob, pk=kwargs["pk"])
        fields = ["status", "total_rows", "processed_rows", "stored", "duplicates", "rejected_count", "error"]
        return JsonResponse({"id": job.pk, "percent": job.percent, **{name: getattr(job, name) for name in fields}})


class ImportRejectedCsvView(StaffPermissionMixin, View):
    """The rejected rows of an import, as CSV: row number and reason."""

    required_permissions = ("integrations.view_importjob",)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        job = get_object_or_404(ImportJob, pk=kwargs["pk"])
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-rejected.csv"'
        writer = csv.writer(response)
        writer.writerow(["row", "error"])
        for row in job.rejected:
            writer.writerow([row["row"], row["error"]])
        return response
