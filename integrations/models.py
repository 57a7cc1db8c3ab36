"""What the integrations layer keeps about traffic crossing the boundary."""

from __future__ import annotations

from django.db import models

from audiences.models import Source


class IngestionError(models.Model):
    """A call the tracking API could not accept, kept with its reason so a developer can fix the sender.

    Whole-request failures (bad JSON, oversized body) and single rejected calls inside a batch both land here;
    the payload is truncated so a hostile client cannot fill the disk through this table.
    """

    MAX_PAYLOAD_CHARS = 4000

    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField(db_index=True)
    route = models.CharField(max_length=20)
    message_id = models.CharField(max_length=100, blank=True)
    error = models.TextField()
    payload = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["source", "-received_at"], name="ingestionerror_source_recent")]

    def __str__(self) -> str:
        return f"{self.received_at:%Y-%m-%d %H:%M:%S} {self.route}: {self.error}"
