"""Integration settings pages (Admin role): event sources and their write keys."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.generic import TemplateView

from audiences import services
from audiences.models import Source
from config.permissions import StaffPermissionMixin
from integrations.forms import SourceForm


class SourceListView(StaffPermissionMixin, TemplateView):
    """Sources with their key prefixes; creating one shows its write key once."""

    template_name = "integrations/source_list.html"
    admin_only = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", SourceForm())
        context["sources"] = Source.objects.order_by("name")
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = SourceForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        source, write_key = services.source_create(name=form.cleaned_data["name"], kind=form.cleaned_data["kind"])
        return render(
            request, "integrations/source_key.html", {"source": source, "write_key": write_key, "created": True}
        )


class SourceRotateView(StaffPermissionMixin, TemplateView):
    """Rotate a source's write key (POST); the new key is shown once."""

    template_name = "integrations/source_key.html"
    admin_only = True
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        source = get_object_or_404(Source, pk=kwargs["pk"])
        write_key = services.source_rotate_key(source=source)
        return render(request, self.template_name, {"source": source, "write_key": write_key, "created": False})
