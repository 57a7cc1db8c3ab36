"""Fixtures of the integrations tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.tests.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A recording HTTP receiver on 127.0.0.1, stopped after the test."""
    running = Receiver()
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()
