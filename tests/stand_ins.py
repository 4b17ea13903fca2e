"""What the helpdesk stand-in fixtures (``tests/zendesk/stand_in.py``,
``tests/intercom/stand_in.py``) share: a stand-in app on a real socket with a client
of it, and waiting for what its webhook delivers on a thread of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.applications import Starlette

from connectors.planhat.sandbox.server import BackgroundServer


@contextmanager
def served(
    app: Starlette, headers: Mapping[str, str]
) -> Iterator[tuple[BackgroundServer, httpx.Client]]:
    """``app`` on a real socket, and a client of it sending ``headers``."""
    server = BackgroundServer(app)
    with server, httpx.Client(base_url=server.url, headers=dict(headers)) as client:
        yield server, client


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
