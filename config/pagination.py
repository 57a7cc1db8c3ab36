"""Cursor (keyset) pagination for the API and the staff UI alike.

Keyset pages cost the same on page 1 and page 10,000 and never run COUNT(*), which keeps lists fast on
millions of customers and events. The UI reuses DRF's cursor paginator so both speak the same cursors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request


class NewestFirstCursorPagination(CursorPagination):
    """API default: newest rows first by primary key; `page_size` may be lowered or raised up to 500."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 500


@dataclass
class UIPage:
    """One page of a staff UI list with links to its neighbours."""

    items: list[Any]
    next_url: str | None
    previous_url: str | None


def paginate_for_ui(request: HttpRequest, queryset: QuerySet[Any], *, ordering: str = "-id", size: int = 50) -> UIPage:
    """Cut a page out of `queryset` by the `cursor` query parameter (keyset; no count)."""
    paginator = NewestFirstCursorPagination()
    paginator.ordering = ordering
    paginator.page_size = size
    paginator.page_size_query_param = ""
    try:
        items = paginator.paginate_queryset(queryset, Request(request)) or []
    except NotFound as invalid:
        raise Http404("That page link is not valid (a cursor was changed or truncated).") from invalid
    return UIPage(items=list(items), next_url=paginator.get_next_link(), previous_url=paginator.get_previous_link())
