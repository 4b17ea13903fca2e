"""Fixtures for the sandbox's plain-HTTP tests (helpers in tests/planhat/sandbox_http.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from connectors.planhat.sandbox.server import BackgroundSandbox
from tests.planhat.sandbox_http import client_for


@pytest.fixture
def api(sandbox: BackgroundSandbox) -> Iterator[httpx.Client]:
    """A plain httpx client to the (emptied) session sandbox, with a valid token."""
    with client_for(sandbox) as client:
        yield client
