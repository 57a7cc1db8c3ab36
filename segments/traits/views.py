"""Staff UI pages for computed traits: the list with backfill progress, the create/edit form, the detail page
(definition, progress that refreshes itself while the backfill runs, distribution of values, recent changes),
and deletion."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.generic import TemplateView

from audiences.models import ComputedTrait
from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from segments.traits import selectors
from segments.traits.definitions import InvalidTrait
from segments.traits.forms import ComputedTraitForm
from segments.traits.kinds import trait_value_type
from segments.traits.services import TraitInUse, computed_trait_delete, computed_trait_save


class ComputedTraitListView(StaffPermissionMixin, TemplateView):
    template_name = "audiences/computed_trait_list.html"
    required_permissions = ("audiences.view_computedtrait",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "page": paginate_for_ui(self.request, selectors.computed_trait_list(), ordering="key", size=100),
        }


class ComputedTraitEditView(StaffPermissionMixin, TemplateView):
    """Create or change a definition; the engine validates it and, when what it computes changed, backfills."""

    template_name = "audiences/computed_trait_edit.html"
    required_permissions = ("audiences.change_computedtrait",)

    def _trait(self) -> ComputedTrait | None:
        return get_object_or_404(ComputedTrait, pk=self.kwargs["pk"]) if "pk" in self.kwargs else None

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        trait = self._trait()
        form = kwargs.pop("form", None)
        if form is None:
            form = ComputedTraitForm(initial=ComputedTraitForm.initial_for(trait) if trait else None)
        return {**super().get_context_data(**kwargs), "trait": trait, "form": form}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        trait = self._trait()
        form = ComputedTraitForm(request.POST)
        if form.is_valid():
            try:
                saved = computed_trait_save(trait=trait, **form.definition())
            except InvalidTrait as invalid:
                form.add_invalid(invalid)
            else:
                messages.success(request, f"Saved computed.{saved.key}.")
                return HttpResponseRedirect(reverse("computed-trait-detail", kwargs={"pk": saved.pk}))
        return self.render_to_response(self.get_context_data(form=form), status=400)


class ComputedTraitCreateView(ComputedTraitEditView):
    required_permissions = ("audiences.add_computedtrait",)


class ComputedTraitDetailView(StaffPermissionMixin, TemplateView):
    template_name = "audiences/computed_trait_detail.html"
    required_permissions = ("audiences.view_computedtrait", "audiences.view_customer")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        trait = get_object_or_404(selectors.computed_trait_list(), pk=self.kwargs["pk"])
        return {
            **super().get_context_data(**kwargs),
            "trait": trait,
            "value_type": trait_value_type(trait.kind),
            "distribution": selectors.computed_trait_distribution(trait),
            "changes": paginate_for_ui(self.request, selectors.computed_trait_changes(trait), ordering="-at", size=25),
            "backfilling": trait.backfill_status in (ComputedTrait.Backfill.PENDING, ComputedTrait.Backfill.RUNNING),
        }


class ComputedTraitDeleteView(StaffPermissionMixin, TemplateView):
    """Delete (POST); refused with a message while segments compare on the trait."""

    required_permissions = ("audiences.delete_computedtrait",)
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        trait = get_object_or_404(ComputedTrait, pk=kwargs["pk"])
        try:
            computed_trait_delete(trait=trait)
        except TraitInUse as in_use:
            messages.error(request, f"Not deleted: {in_use}.")
            return HttpResponseRedirect(reverse("computed-trait-detail", kwargs={"pk": trait.pk}))
        messages.success(request, f"Deleted computed.{trait.key}.")
        return HttpResponseRedirect(reverse("computed-trait-list"))
