"""What GDPR erasure (audiences.privacy) does with what crossed the boundary: Stripe events and raw webhook
bodies, the tracking API's error log, outbound deliveries kept after a merge, and uploaded import files.

Log rows about the person's calls and deliveries are deleted whole (their payloads hold far more than the ids
that found them: addresses, card details, whatever the product sent). Import uploads keep their row numbering:
the person's rows are blanked in place, so a job that resumes still starts at the right row.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db import models

from audiences.privacy import Action, ErasureRule, FileRewrite, PersonTraces
from integrations.models import DestinationDelivery, ImportJob, IngestionError
from integrations.stripe.models import StripeCustomer, StripeEvent, StripeWebhookDelivery


def _linked_elsewhere() -> models.QuerySet[Any]:
    return StripeCustomer.objects.filter(customer__isnull=False).values("stripe_customer_id")


def _stripe_events_owned(traces: PersonTraces) -> models.QuerySet[Any]:
    return StripeEvent.objects.filter(stripe_customer_id__in=traces.tag("stripe_customer_ids"))


def _stripe_events_searched(traces: PersonTraces) -> models.QuerySet[Any]:
    """Events of no linked Stripe customer (disputes name only a charge; an unlinked customer may be theirs)."""
    return StripeEvent.objects.exclude(stripe_customer_id__in=_linked_elsewhere())


def _stripe_deliveries_owned(traces: PersonTraces) -> models.QuerySet[Any]:
    return StripeWebhookDelivery.objects.filter(stripe_customer_id__in=traces.tag("stripe_customer_ids"))


def _stripe_deliveries_searched(traces: PersonTraces) -> models.QuerySet[Any]:
    """Deliveries naming no linked Stripe customer: refused bodies, disputes, unlinked customers."""
    return StripeWebhookDelivery.objects.exclude(stripe_customer_id__in=_linked_elsewhere())


def _ingestion_errors(traces: PersonTraces) -> models.QuerySet[Any]:
    return IngestionError.objects.all()


def _deliveries_without_customer(traces: PersonTraces) -> models.QuerySet[Any]:
    """Deliveries whose profile was merged away: their payload still says who they were about."""
    return DestinationDelivery.objects.filter(customer__isnull=True)


ERASURE_RULES = [
    ErasureRule(
        "integrations.StripeEvent",
        action=Action.DELETE,
        owned=_stripe_events_owned,
        searched=_stripe_events_searched,
        search_tags=("stripe_charge_ids",),
    ),
    ErasureRule(
        "integrations.StripeWebhookDelivery",
        action=Action.DELETE,
        owned=_stripe_deliveries_owned,
        searched=_stripe_deliveries_searched,
        search_tags=("stripe_charge_ids",),
    ),
    ErasureRule("integrations.IngestionError", action=Action.DELETE, searched=_ingestion_errors),
    ErasureRule("integrations.DestinationDelivery", action=Action.DELETE, searched=_deliveries_without_customer),
]


def _mentions(traces: PersonTraces, value: Any) -> bool:
    return bool(traces.redact_json(value) != value)


def _csv_rewrite(source: Path, target: Path, traces: PersonTraces) -> int:
    blanked = 0
    with source.open(newline="", encoding="utf-8-sig") as reading, target.open("w", newline="") as writing:
        rows, out = csv.reader(reading), csv.writer(writing)
        header = next(rows, None)
        if header is None:
            return 0
        out.writerow(header)
        for row in rows:
            if row and _mentions(traces, dict(zip(header, row, strict=False))):
                row, blanked = [""] * len(row), blanked + 1
            out.writerow(row)
    return blanked


def _ndjson_rewrite(source: Path, target: Path, traces: PersonTraces) -> int:
    blanked = 0
    with source.open(encoding="utf-8-sig") as reading, target.open("w") as writing:
        for line in reading:
            if line.strip():
                try:
                    mentioned = _mentions(traces, orjson.loads(line))
                except orjson.JSONDecodeError:
                    mentioned = traces.redact_text(line) != line
                if mentioned:
                    # An empty call keeps the line's number; imported later, it is rejected for lack of an id.
                    line, blanked = "{}\n", blanked + 1
            writing.write(line)
    return blanked


def import_files_sweep(traces: PersonTraces) -> list[FileRewrite]:
    """Uploaded import files (under IMPORT_DIR; a file the command imported from elsewhere is the operator's)
    with the person's rows blanked, prepared next to each file for the erasure to swap in."""
    uploads = Path(settings.IMPORT_DIR).resolve()
    rewrites: list[FileRewrite] = []
    prepared: Path | None = None
    try:
        for path_text, file_format in ImportJob.objects.values_list("file_path", "file_format").distinct():
            path = Path(path_text).resolve()
            if not path.is_file() or not path.is_relative_to(uploads):
                continue
            prepared = path.with_name(f"{path.name}.erasing")
            rewrite = _csv_rewrite if file_format == ImportJob.Format.CSV else _ndjson_rewrite
            if rewrite(path, prepared, traces):
                rewrites.append(FileRewrite(label="integrations.ImportJob file", path=path, prepared=prepared))
            else:
                prepared.unlink()
            prepared = None
    except BaseException:
        for leftover in [*(rewrite.prepared for rewrite in rewrites), *([prepared] if prepared else [])]:
            leftover.unlink(missing_ok=True)
        raise
    return rewrites
