"""Webhooks a stand-in sends, delivered in the background: the one deliverer that the
Planhat sandbox's Automations and the helpdesk stand-ins' webhooks (``SourceWebhook``)
share.

A stand-in fires from inside a request it is answering, so it must not wait for the
receiver: bodies queue, and one thread per deliverer (started on the first body) POSTs
them in order, one try each (neither a simple Planhat automation nor, in tests, a Zendesk
webhook is retried: a failure is counted, which is how a missed webhook shows). ``headers``
is asked per body at send time, so a signature can cover the body and the moment it goes.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog

from connectors.tls import tls

log = structlog.get_logger(__name__)

Headers = Callable[[bytes], Mapping[str, str]]


class Deliverer:
    def __init__(self, name: str, headers: Headers, timeout: httpx.Timeout) -> None:
        self.name = name
        self._headers, self._timeout = headers, timeout
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0  # queued or being delivered
        self._delivered = 0  # answered 2xx
        self._failed = 0  # answered otherwise, or not at all
        self._thread: threading.Thread | None = None

    def send(self, url: str, body: bytes) -> None:
        """POST ``body`` to ``url`` later, after every body sent before it."""
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._deliver_all, daemon=True,
                                                name=self.name)  # fmt: skip
                self._thread.start()
        self._queue.put((url, body))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"delivered": self._delivered, "failed": self._failed,
                    "pending": self._pending}  # fmt: skip

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def reset(self) -> None:
        """Forget what was delivered and failed; bodies on their way still go."""
        with self._lock:
            self._delivered = self._failed = 0

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _deliver_all(self) -> None:
        with httpx.Client(verify=tls(), timeout=self._timeout, follow_redirects=False) as http:
            while (item := self._queue.get()) is not None:
                url, body = item
                ok = False
                try:
                    ok = http.post(url, content=body, headers=dict(self._headers(body))).is_success
                except httpx.HTTPError as error:
                    log.info("sandbox.delivery_failed", deliverer=self.name,
                             error=type(error).__name__)  # fmt: skip
                with self._lock:
                    self._pending -= 1
                    if ok:
                        self._delivered += 1
                    else:
                        self._failed += 1


class SourceWebhook:
    """A helpdesk stand-in's webhook subscription (URL and signing secret): what it fires
    goes out through a ``Deliverer``, signed as it leaves (``signed``: the source's own
    signature), unless paused (POST /_sandbox/webhook {"paused": true}: those are lost,
    counted as dropped)."""

    def __init__(
        self,
        url: str | None,
        secret: str,
        *,
        name: str,
        signed: Callable[[str, bytes], Mapping[str, str]],
        timeout: httpx.Timeout,
    ) -> None:
        self.url, self.secret = url, secret
        self.fired = self.dropped = 0
        self.paused = False
        self._lock = threading.Lock()
        self._deliverer = Deliverer(name, lambda body: signed(self.secret, body), timeout)

    def fire(self, events: list[dict[str, Any]]) -> None:
        if not self.url or not events:
            return
        with self._lock:
            self.fired += len(events)
            if self.paused:
                self.dropped += len(events)
                return
        for event in events:
            self._deliverer.send(self.url, json.dumps(event).encode())

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"fired": self.fired, "dropped": self.dropped, **self._deliverer.counts()}

    def reset(self) -> None:
        with self._lock:
            self.fired = self.dropped = 0
        self._deliverer.reset()

    def close(self) -> None:
        self._deliverer.close()
