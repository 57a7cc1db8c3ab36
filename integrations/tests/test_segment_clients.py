"""Real clients against a real server: the official Segment Python library, and concurrent retries."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from segment.analytics.client import Client as SegmentClient

from audiences.models import Account, Customer, Event
from audiences.services import source_create


@pytest.mark.django_db(transaction=True)
def test_the_official_python_library_unchanged_but_for_its_host(live_url: str) -> None:
    _, write_key = source_create(name="Backend")
    errors: list[Any] = []
    client = SegmentClient(write_key, host=live_url, sync_mode=True, gzip=True, on_error=lambda e, b: errors.append(e))
    client.identify("usr_42", {"email": "Lin@Example.test", "first_name": "Lin", "last_name": "Chen"})
    client.group("usr_42", "grp_example", {"name": "Example Inc", "employees": 12})
    client.track("usr_42", "Project Created", {"template": "kanban"})
    client.page("usr_42", "Docs", "Getting started", {"path": "/docs"})
    client.screen("usr_42", "App", "Home")
    client.track(anonymous_id="anon-tablet", event="App Opened")
    client.alias("anon-tablet", "usr_42")
    client.flush()
    assert errors == []

    customer = Customer.objects.get(user_id="usr_42")
    assert (customer.email, customer.name) == ("lin@example.test", "Lin Chen")
    assert customer.account == Account.objects.get(group_id="grp_example")
    names = list(customer.events.order_by("timestamp", "id").values_list("type", "name"))
    assert names == [
        ("identify", ""),
        ("group", ""),
        ("track", "Project Created"),
        ("page", "Getting started"),
        ("screen", "Home"),
        ("track", "App Opened"),
        ("alias", ""),
    ]
    assert customer.events.get(name="Project Created").context["library"]["name"] == "analytics-python"


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_store_each_message_once(live_url: str) -> None:
    _, write_key = source_create(name="Backend")
    batch = {
        "batch": [
            {
                "type": "track",
                "userId": f"usr_{i % 7}",
                "anonymousId": f"anon_{i % 7}",
                "event": "Clicked",
                "messageId": f"m{i}",
            }
            for i in range(60)
        ]
    }
    results: list[int] = []

    def send() -> None:
        response = requests.post(f"{live_url}/v1/batch", json=batch, auth=(write_key, ""), timeout=60)
        results.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 6
    assert Event.objects.count() == 60
    assert Customer.objects.count() == 7
    assert sorted(str(c.user_id) for c in Customer.objects.all()) == [f"usr_{i}" for i in range(7)]
