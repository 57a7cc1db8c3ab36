"""Which URLs a destination may send to: http(s) only, and never a loopback, private, link-local or reserved
address unless DESTINATIONS_ALLOW_PRIVATE_URLS is set — checked when saved and again when sending. No test here
opens a connection to anything but 127.0.0.1."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Customer
from config.facts import Fact
from integrations.destinations.emit import outbound_emit
from integrations.destinations.models import Destination, DestinationDelivery
from integrations.destinations.outbound_http import UnresolvableHost, UnsafeUrl, url_check
from integrations.destinations.services import DestinationInvalid, destination_create
from integrations.tests.receiver import Receiver


@pytest.fixture(autouse=True)
def private_refused(settings: Any) -> None:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = False


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://93.184.216.34/hooks", "Only http:// and https://"),
        ("file:///etc/passwd", "Only http:// and https://"),
        ("javascript:alert(1)", "Only http:// and https://"),
        ("http:///no-host", "no host"),
        ("https://user:secret@93.184.216.34/", "no user name or password"),
        ("http://93.184.216.34:99999/", "port"),
        ("http://127.0.0.1:8000/hooks", "loopback, private"),
        ("http://127.1.2.3/", "loopback, private"),
        ("http://localhost/", "loopback, private"),
        ("http://[::1]:8080/", "loopback, private"),
        ("http://[::ffff:127.0.0.1]/", "loopback, private"),
        ("http://10.0.0.5/hooks", "loopback, private"),
        ("http://172.16.9.1/", "loopback, private"),
        ("https://192.168.1.20/", "loopback, private"),
        ("http://169.254.169.254/latest/meta-data/", "loopback, private"),
        ("http://100.64.0.1/", "loopback, private"),
        ("http://0.0.0.0/", "loopback, private"),
        ("http://224.0.0.1/", "loopback, private"),
        ("http://[fd00::1]/", "loopback, private"),
        ("http://[fe80::1]/", "loopback, private"),
    ],
)
def test_unsafe_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrl, match=reason):
        url_check(url)


def test_a_public_address_is_accepted_and_the_setting_opens_private_ones(settings: Any) -> None:
    assert url_check("https://93.184.216.34/hooks?x=1") == ["93.184.216.34"]
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True
    assert url_check("http://127.0.0.1:8000/hooks") == ["127.0.0.1"]
    assert url_check("http://10.0.0.5/hooks") == ["10.0.0.5"]
    with pytest.raises(UnsafeUrl, match="Only http"):
        url_check("ftp://127.0.0.1/")  # the setting opens addresses, never other schemes


def test_a_host_that_does_not_resolve_is_refused_as_unresolvable(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_answer(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    with pytest.raises(UnresolvableHost, match=r"Cannot resolve the host 'hooks\.example\.test'"):
        url_check("https://hooks.example.test/")


def test_a_host_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 443)) for ip in ("93.184.216.34", "10.1.2.3")]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
    with pytest.raises(UnsafeUrl, match=r"10\.1\.2\.3"):
        url_check("https://hooks.example.test/")


@pytest.mark.django_db
def test_saving_a_destination_checks_its_url() -> None:
    with pytest.raises(DestinationInvalid, match="loopback, private") as refused:
        destination_create(name="Local", kind="webhook", url="http://127.0.0.1:9/", kinds=["audience_entered"])
    assert refused.value.field == "url"
    with pytest.raises(DestinationInvalid, match="Only http"):
        destination_create(name="FTP", kind="webhook", url="ftp://93.184.216.34/", kinds=["audience_entered"])
    assert not Destination.objects.exists()


@pytest.mark.django_db
def test_dns_that_turns_private_after_saving_is_refused_at_send_time(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    """Saved while the name pointed at a public address; by the time of sending it points at this machine.
    The send is refused (and never retried) without a connection being made."""
    port = int(receiver.url.split(":")[2].split("/")[0])
    resolves_to = {"ip": "93.184.216.34"}

    def resolver(host: str, *args: Any, **kwargs: Any) -> Any:
        assert host == "hooks.example.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (resolves_to["ip"], port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    destination = destination_create(
        name="Rebinding", kind="webhook", url=f"http://hooks.example.test:{port}/", kinds=["audience_entered"]
    )
    resolves_to["ip"] = "127.0.0.1"
    ada = Customer.objects.create(user_id="usr_ada")
    message = Fact("audience_entered", ada.pk, "audience:1:entered:1", timezone.now(), {"audience": {}})
    with django_capture_on_commit_callbacks(execute=True):
        outbound_emit([message])

    delivery = DestinationDelivery.objects.get(destination=destination)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, None)
    assert delivery.last_error.startswith("Refused: The host 'hooks.example.test' resolves to a loopback")
    assert receiver.requests == []


@pytest.mark.django_db
def test_dns_that_fails_at_send_time_is_retried(
    monkeypatch: pytest.MonkeyPatch, settings: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True
    destination = destination_create(name="Flaky DNS", kind="webhook", url=receiver.url, kinds=["audience_entered"])

    def no_answer(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    ada = Customer.objects.create(user_id="usr_ada")
    message = Fact("audience_entered", ada.pk, "audience:1:entered:1", timezone.now(), {"audience": {}})
    with django_capture_on_commit_callbacks(execute=True):
        outbound_emit([message])
    delivery = DestinationDelivery.objects.get(destination=destination)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "Temporary failure in name resolution" in delivery.last_error
