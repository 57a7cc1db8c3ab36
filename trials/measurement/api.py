"""REST endpoints of the measurement reports: the same rows as the pages and CSV exports, as JSON."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trials.measurement.forms import MeasurementFilterForm
from trials.measurement.views import REPORTS, Report


class CanReadReport(BasePermission):
    """Signed-in staff whose role holds every view permission the report reads (as on its page)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perms(view.report.permissions))


FILTER_PARAMETERS = [
    OpenApiParameter("since", OpenApiTypes.DATE, description="Trials started on or after (YYYY-MM-DD)."),
    OpenApiParameter("until", OpenApiTypes.DATE, description="Trials started on or before (YYYY-MM-DD)."),
    OpenApiParameter("model", OpenApiTypes.STR, enum=["opt_in", "opt_out"]),
    OpenApiParameter("source", OpenApiTypes.STR),
    OpenApiParameter("plan", OpenApiTypes.INT, description="Plan id."),
    OpenApiParameter("segment", OpenApiTypes.INT, description="Segment id (filter, or the split with split=segment)."),
    OpenApiParameter("period", OpenApiTypes.STR, enum=["week", "month"], description="Cohorts only."),
    OpenApiParameter("split", OpenApiTypes.STR, enum=["model", "source", "plan", "segment"], description="Cohorts."),
    OpenApiParameter("days", OpenApiTypes.INT, description="Activation discovery: the first D days (1–90)."),
]


class MeasurementReportAPIView(APIView):
    """GET /api/v1/measurement/<report>/ — `columns`, `rows` and `summary` of one report; 400 with the field
    errors for bad filters."""

    permission_classes = [CanReadReport]
    report: Report = REPORTS["cohorts"]

    @extend_schema(parameters=FILTER_PARAMETERS, responses=dict[str, Any])
    def get(self, request: Request) -> Response:
        """The report's rows for the given filters (the same rows as the page's table and CSV export)."""
        form = MeasurementFilterForm(request.query_params)
        if not form.is_valid():
            return Response({"detail": "Invalid filters.", "errors": form.errors.get_json_data()}, status=400)
        table = self.report.build(form, timezone.now(), request.user)
        return Response({"report": self.report.slug, **table.as_json()})


def report_api_view(slug: str) -> Any:
    return MeasurementReportAPIView.as_view(report=REPORTS[slug])
