"""Staff UI pages for segments: list with tag filter, builder (create/edit), detail with members and explain."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.generic import TemplateView

from audiences.models import Customer
from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from segments import evaluation, selectors, services
from segments.conditions import InvalidCondition
from segments.forms import SegmentForm
from segments.live.publish import audience_key
from segments.models import Segment, SegmentTag, SegmentVersion


class SegmentListView(StaffPermissionMixin, TemplateView):
    template_name = "segments/segment_list.html"
    required_permissions = ("segments.view_segment",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        segments = Segment.objects.prefetch_related("tags").order_by("name")
        tag = self.request.GET.get("tag", "")
        if tag:
            segments = segments.filter(tags__name=tag)
        return {
            **super().get_context_data(**kwargs),
            "segments": segments,
            "tags": SegmentTag.objects.all(),
            "selected_tag": tag,
        }


class SegmentEditView(StaffPermissionMixin, TemplateView):
    """The condition builder (static/js/segment_builder.js) around a plain form; saving validates the tree."""

    template_name = "segments/segment_edit.html"
    required_permissions = ("segments.change_segment",)

    def _segment(self) -> Segment | None:
        return get_object_or_404(Segment, pk=self.kwargs["pk"]) if "pk" in self.kwargs else None

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        segment = self._segment()
        form = kwargs.pop("form", None)
        if form is None:
            initial: dict[str, Any] = {"conditions": {"type": "group", "operator": "and", "children": []}}
            if segment is not None:
                tags = ", ".join(segment.tags.values_list("name", flat=True))
                forced = ", ".join(str(u) for u in segment.draft_test_customers.values_list("user_id", flat=True))
                initial = {"name": segment.name, "description": segment.description, "tags": tags,
                           "conditions": segment.draft_conditions or segment.conditions,
                           "test_customers": forced}  # fmt: skip
            form = SegmentForm(initial=initial, segment=segment)
        conditions = form["conditions"].value()
        if isinstance(conditions, str):
            try:
                conditions = json.loads(conditions)
            except ValueError:
                conditions = {"type": "group", "operator": "and", "children": []}
        return {**super().get_context_data(**kwargs), "segment": segment, "form": form, "tree": conditions}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        segment = self._segment()
        form = SegmentForm(request.POST, segment=segment)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        if segment is not None and request.POST.get("action") == "draft":
            services.segment_draft_save(
                segment=segment,
                conditions=form.cleaned_data["conditions"],
                test_customer_ids=form.cleaned_data["test_customers"],
                author=request.user,
            )
            return HttpResponseRedirect(reverse("segment-detail", kwargs={"pk": segment.pk}))
        saved = services.segment_save(
            segment=segment,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            tags=form.cleaned_data["tags"],
            conditions=form.cleaned_data["conditions"],
            owner=request.user,
        )
        evaluation.segment_evaluate(segment=saved)
        return HttpResponseRedirect(reverse("segment-detail", kwargs={"pk": saved.pk}))


class SegmentCreateView(SegmentEditView):
    required_permissions = ("segments.add_segment",)


class SegmentRestoreView(StaffPermissionMixin, TemplateView):
    """Restore an earlier version (POST); it becomes a new version and the segment is re-evaluated."""

    required_permissions = ("segments.change_segment",)
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        version = get_object_or_404(SegmentVersion, segment_id=kwargs["pk"], number=kwargs["number"])
        segment = services.segment_version_restore(version=version, author=request.user)
        evaluation.segment_evaluate(segment=segment)
        return HttpResponseRedirect(reverse("segment-detail", kwargs={"pk": segment.pk}))


def _readable(node: dict[str, Any]) -> dict[str, Any]:
    """The stored tree with each leaf described in words, for the detail page."""
    if node.get("type") == "group":
        return {**node, "children": [_readable(child) for child in node["children"]]}
    return {**node, "text": selectors.describe_json(node)}


class SegmentDetailView(StaffPermissionMixin, TemplateView):
    template_name = "segments/segment_detail.html"
    required_permissions = ("segments.view_segment", "audiences.view_customer")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        segment = get_object_or_404(Segment.objects.prefetch_related("tags"), pk=self.kwargs["pk"])
        context = {
            **super().get_context_data(**kwargs),
            "segment": segment,
            "tree": _readable(segment.conditions),
            "page": paginate_for_ui(self.request, selectors.segment_members(segment).select_related("account")),
            "changes": segment.changes.select_related("customer")[:20],
            "versions": selectors.segment_versions(segment)[:10],
            "audience_key": audience_key(segment),
        }
        if segment.draft_conditions is not None:
            context["draft"] = selectors.segment_draft_compare(segment)
            context["draft_tree"] = _readable(segment.draft_conditions)
        wanted = self.request.GET.get("explain", "").strip()
        if wanted:
            matches = Customer.objects.filter(
                Q(user_id=wanted) | Q(email=wanted.lower()) | Q(pk=int(wanted) if wanted.isdigit() else -1)
            )[:2]
            if len(matches) == 1:
                context["explained_customer"] = matches[0]
                context["explanation"] = selectors.explain(segment.conditions, matches[0])
            else:
                context["explain_error"] = f"“{wanted}” matches {len(matches)} customers; give an id, user id or email."
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Evaluate now, or publish / discard the draft."""
        if not request.user.has_perm("segments.change_segment"):
            return HttpResponse("Your role may not change segments.", status=403)
        segment = get_object_or_404(Segment, pk=kwargs["pk"])
        action = request.POST.get("action", "evaluate")
        if action == "publish" and segment.draft_conditions is not None:
            services.segment_draft_publish(segment=segment, author=request.user)
        elif action == "discard":
            services.segment_draft_discard(segment=segment)
        else:
            try:
                evaluation.segment_evaluate(segment=segment)
            except InvalidCondition as broken:
                messages.error(request, f"Cannot evaluate: {broken}. Edit the conditions.")
        return HttpResponseRedirect(reverse("segment-detail", kwargs={"pk": segment.pk}))
