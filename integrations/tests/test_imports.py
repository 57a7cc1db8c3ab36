"""Historical import: formats, idempotency, resuming after a failure, rejected-row reports, command and UI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client, TestCase
from django.urls import reverse

from audiences import ingestion
from audiences.models import Customer, Event, Source
from audiences.services import source_create
from conftest import TEST_PASSWORD
from integrations.tracking import imports
from integrations.tracking.imports import ImportRejected, import_job_create, import_job_run
from integrations.tracking.models import ImportJob

EVENTS_CSV = """type,event,userId,anonymousId,timestamp,properties,plan
track,Project Created,usr_1,,2026-01-05T10:00:00Z,"{""template"": ""kanban""}",team
track,Report Generated,usr_1,,2026-01-06T10:00:00Z,,team
page,,usr_2,,2026-01-07T10:00:00Z,,
track,,usr_3,,2026-01-07T10:00:00Z,,
track,Signed Up,,,2026-01-07T10:00:00Z,,
track,Broken,usr_4,,2026-01-07T10:00:00Z,{not json},
"""


@pytest.fixture
def source(db: Any) -> Source:
    created, _ = source_create(name="History", kind=Source.Kind.IMPORT)
    return created


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(source: Source, path: Path, kind: str = "events") -> ImportJob:
    job = import_job_create(source=source, kind=kind, path=path, original_name=path.name)
    with TestCase.captureOnCommitCallbacks(execute=True):
        return import_job_run(job=job)


@pytest.mark.django_db
class TestEventFiles:
    def test_csv_rows_become_events_and_bad_rows_are_reported(self, source: Source, tmp_path: Path) -> None:
        job = run(source, write(tmp_path, "events.csv", EVENTS_CSV))
        assert (job.status, job.total_rows, job.processed_rows) == ("done", 6, 6)
        assert (job.stored, job.rejected_count) == (3, 3)
        assert [r["row"] for r in job.rejected] == [4, 5, 6]
        assert "track needs an event name" in job.rejected[0]["error"]
        assert "userId or anonymousId is required" in job.rejected[1]["error"]
        assert "not valid JSON" in job.rejected[2]["error"]
        created = Event.objects.get(name="Project Created")
        assert created.properties == {"template": "kanban", "plan": "team"}
        assert created.timestamp.isoformat() == "2026-01-05T10:00:00+00:00"

    def test_reimporting_stores_nothing_twice(self, source: Source, tmp_path: Path) -> None:
        path = write(tmp_path, "events.csv", EVENTS_CSV)
        run(source, path)
        again = run(source, path)
        assert (again.stored, again.duplicates) == (0, 3)
        assert Event.objects.count() == 3

    def test_ndjson_lines_are_segment_calls(self, source: Source, tmp_path: Path) -> None:
        lines = [
            {"type": "identify", "userId": "usr_9", "traits": {"email": "Nine@X.test"}},
            {"type": "track", "userId": "usr_9", "event": "Project Created", "messageId": "m-1"},
            "not an object",
        ]
        text = "\n".join(json.dumps(line) for line in lines) + "\n\n{broken\n"
        job = run(source, write(tmp_path, "calls.ndjson", text))
        assert (job.total_rows, job.stored, job.rejected_count) == (4, 2, 2)
        assert Customer.objects.get(user_id="usr_9").email == "nine@x.test"
        assert Event.objects.filter(message_id="m-1").exists()

    def test_a_failed_run_resumes_where_it_stopped(
        self, source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
        rows = "\n".join(json.dumps({"userId": f"u{i}", "event": "Clicked", "messageId": f"m{i}"}) for i in range(7))
        job = import_job_create(
            source=source, kind="events", path=write(tmp_path, "c.ndjson", rows), original_name="c.ndjson"
        )
        real_ingest = ingestion.messages_ingest
        calls = {"n": 0}

        def failing_on_third_chunk(**kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("database went away")
            return real_ingest(**kwargs)

        with mock.patch.object(imports, "messages_ingest", failing_on_third_chunk), pytest.raises(RuntimeError):
            import_job_run(job=job)
        job.refresh_from_db()
        assert (job.status, job.processed_rows, job.stored) == ("failed", 4, 4)
        assert "database went away" in job.error
        import_job_run(job=job)
        job.refresh_from_db()
        assert (job.status, job.processed_rows, job.stored, job.duplicates) == ("done", 7, 7, 0)
        assert Event.objects.count() == 7


@pytest.mark.django_db
class TestCustomerFiles:
    def test_csv_columns_become_traits(self, source: Source, tmp_path: Path) -> None:
        text = "userId,email,first_name,company\nusr_1,ADA@acme.test,Ada,Acme\n,nobody@x.test,No,Id\n"
        job = run(source, write(tmp_path, "customers.csv", text), kind="customers")
        assert (job.stored, job.rejected_count) == (1, 1)
        ada = Customer.objects.get(user_id="usr_1")
        assert ada.email == "ada@acme.test"
        assert ada.traits == {"email": "ADA@acme.test", "first_name": "Ada", "company": "Acme"}

    def test_flat_ndjson_objects_are_traits(self, source: Source, tmp_path: Path) -> None:
        run(source, write(tmp_path, "c.jsonl", json.dumps({"userId": "usr_2", "plan": "team"})), kind="customers")
        assert Customer.objects.get(user_id="usr_2").traits == {"plan": "team"}


@pytest.mark.django_db
class TestFileChecks:
    def test_unknown_extension_is_refused(self, source: Source, tmp_path: Path) -> None:
        with pytest.raises(ImportRejected, match="Cannot tell the format"):
            import_job_create(source=source, kind="events", path=write(tmp_path, "x.xlsx", "a"), original_name="x.xlsx")

    def test_binary_file_is_refused(self, source: Source, tmp_path: Path) -> None:
        path = tmp_path / "x.csv"
        path.write_bytes(b"\xff\xfe\x00\x81garbage")
        with pytest.raises(ImportRejected, match="Cannot read"):
            import_job_create(source=source, kind="events", path=path, original_name="x.csv")


@pytest.mark.django_db
class TestCommand:
    def test_command_imports_with_progress_and_resume_option(self, tmp_path: Path, capsys: Any) -> None:
        path = write(tmp_path, "events.csv", EVENTS_CSV)
        with TestCase.captureOnCommitCallbacks(execute=True):
            call_command("import_events", str(path), "--source", "Backfill")
        out = capsys.readouterr().out
        assert "100%" in out
        assert "3 stored" in out
        assert "row 4: track needs an event name" in out
        assert Source.objects.get(name="Backfill").kind == "import"
        job = ImportJob.objects.get()
        call_command("import_events", "--resume", str(job.pk))
        assert Event.objects.count() == 3

    def test_missing_file_is_a_clear_error(self) -> None:
        with pytest.raises(CommandError, match="No such file"):
            call_command("import_events", "/nonexistent/file.csv")


@pytest.mark.django_db
class TestUpload:
    def test_upload_runs_the_import_and_reports_progress(self, source: Source, admin_user: AbstractUser) -> None:
        client = Client()
        client.login(username=admin_user.get_username(), password=TEST_PASSWORD)
        upload = SimpleUploadedFile("events.csv", EVENTS_CSV.encode(), content_type="text/csv")
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = client.post(reverse("import-list"), {"file": upload, "kind": "events", "source": source.pk})
        assert response.status_code == 302
        job = ImportJob.objects.get()
        progress = client.get(reverse("import-progress", kwargs={"pk": job.pk})).json()
        assert (progress["status"], progress["percent"], progress["stored"]) == ("done", 100, 3)
        report = client.get(reverse("import-rejected", kwargs={"pk": job.pk})).content.decode()
        assert report.splitlines()[0] == "row,error"
        assert "4,track needs an event name" in report
        assert "events.csv" in client.get(reverse("import-list")).content.decode()

    def test_bad_upload_is_a_form_error(self, source: Source, admin_user: AbstractUser) -> None:
        client = Client()
        client.login(username=admin_user.get_username(), password=TEST_PASSWORD)
        upload = SimpleUploadedFile("sheet.xlsx", b"PK\x03\x04", content_type="application/octet-stream")
        response = client.post(reverse("import-list"), {"file": upload, "kind": "events", "source": source.pk})
        assert response.status_code == 400
        assert "Cannot tell the format" in response.content.decode()
        assert not ImportJob.objects.exists()
