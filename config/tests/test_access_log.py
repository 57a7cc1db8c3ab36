"""gunicorn's access log, as `make run` and the production example start it, prints no write key, secret,
signature or credential link: real gunicorn (the Procfile's web command, which reads gunicorn.conf.py) serves
requests carrying them in every place analytics.js, Stripe and our links put them, and its output is searched."""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from audiences.services import source_create
from conftest import ROOT, database_url_of_test_database, free_port

# The default format plus every credential atom an operator might add to it.
LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(U)s %(q)s ' + (
    "%({authorization}i)s %({stripe-signature}i)s %({cookie}i)s %({http_authorization}e)s"
)


def _web_command(port: int) -> list[str]:
    """The Procfile's web line, on this port, with the access log format above."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = shlex.split(line.removeprefix("web:").replace("$PORT", str(port)))
    command[0] = str(Path(sys.executable).parent / "gunicorn")
    return [*command, "--workers", "1", "--access-logformat", LOG_FORMAT]


class Gunicorn:
    """gunicorn started from the Procfile's web line on the test database; `stop()` returns all it printed."""

    def __init__(self) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url_of_test_database(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        }
        self.process = subprocess.Popen(
            _web_command(self.port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", self.port, timeout=5).connect()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start:\n" + self.stop()) from None
                time.sleep(0.2)

    def send(self, method: str, target: str, body: bytes = b"", **headers: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request(method, target, body=body or None, headers={"Host": "127.0.0.1", **headers})
        response = connection.getresponse()
        response.read()
        return response.status

    def stop(self) -> str:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        output, _ = self.process.communicate(timeout=60)
        print(output)  # shown by pytest when the test fails  # noqa: T201
        return output


@pytest.fixture
def gunicorn(transactional_db: None) -> Iterator[Gunicorn]:
    server = Gunicorn()
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


def test_the_access_log_prints_no_credential(gunicorn: Gunicorn) -> None:
    _, write_key = source_create(name="Web")
    legacy_key = secrets.token_urlsafe(24)  # a write key from before keys had a prefix: random text
    secret_key = "tlsk_" + secrets.token_urlsafe(24)
    signed_link = "Ijk5Ig:1vAbCd:" + secrets.token_urlsafe(30)
    session_token = secrets.token_urlsafe(24)
    signature = "t=1700000000,v1=" + secrets.token_hex(32)
    session_cookie = secrets.token_hex(16)
    basic = "Basic " + base64.b64encode(f"{legacy_key}:".encode()).decode()
    track = json.dumps({"writeKey": write_key, "userId": "usr_1", "event": "Signed Up"}).encode()

    assert gunicorn.send("GET", f"/v1/batch?writeKey={legacy_key}&sentAt=now") == 405
    gunicorn.send("POST", f"/v1/track?write_key={write_key}", track, Authorization=basic)
    assert (
        gunicorn.send(
            "GET",
            f"/login/?next=/&token={secret_key}&key={legacy_key}",
            Referer=f"https://shop.example/account?writeKey={legacy_key}",
            Cookie=f"sessionid={session_cookie}",
        )
        == 200
    )
    gunicorn.send("GET", f"/cancel/{signed_link}/")
    gunicorn.send("GET", f"/api/v1/cancellation-sessions/{session_token}/")
    gunicorn.send("POST", "/webhooks/stripe/", b"{}", **{"Stripe-Signature": signature, "Authorization": basic})
    time.sleep(0.5)  # gunicorn writes the access line after the answer has gone
    output = gunicorn.stop()

    assert '"GET /v1/batch?writeKey=[secret]&sentAt=now HTTP/1.1" 405' in output, "the requests were logged"
    assert '"GET /login/?next=/&token=[secret]&key=[secret] HTTP/1.1" 200' in output
    assert "https://shop.example/account?writeKey=[secret]" in output
    assert "/cancel/[secret]/" in output and "/api/v1/cancellation-sessions/[secret]/" in output
    assert '"POST /webhooks/stripe/ HTTP/1.1"' in output
    for secret in (write_key, legacy_key, secret_key, signed_link, session_token, signature, session_cookie, basic):
        assert secret not in output
    assert base64.b64encode(f"{legacy_key}:".encode()).decode() not in output
