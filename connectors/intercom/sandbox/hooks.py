"""The stand-in's webhook: every change of a ticket, through the API or by an admin in the
UI, POSTs Intercom's notification to the configured URL, signed as Intercom signs
(``connectors/intercom/verify.py``), one notification per topic, through the stand-ins'
shared deliverer (``connectors/planhat/sandbox/delivery.py``).

The envelope follows Intercom's (webhook models, "Notification"): ``type``
``notification_event``, ``app_id``, ``data`` ``{type: notification_event_data, item: the
ticket}``, ``id`` ``notif_<uuid>``, ``topic``, ``delivery_status``, ``delivery_attempts``,
``first_sent_at``, ``created_at``.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import httpx

from connectors.intercom.verify import signed_headers
from connectors.planhat.sandbox.delivery import Deliverer

DELIVERY_TIMEOUT = httpx.Timeout(10.0, connect=2.0)


def notification(app_id: str, topic: str, item: dict[str, Any], at: int) -> dict[str, Any]:
    return {
        "type": "notification_event",
        "app_id": app_id,
        "data": {"type": "notification_event_data", "item": item},
        "links": {},
        "id": f"notif_{uuid.uuid4()}",
        "topic": topic,
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": at,
        "created_at": at,
        "self": None,
    }


class Webhook:
    """The app's webhook subscription (URL, client secret); bodies signed as they leave."""

    def __init__(self, url: str | None, secret: str) -> None:
        self.url, self.secret = url, secret
        self.fired = self.dropped = 0
        self.paused = False  # POST /_sandbox/webhook {"paused": true}: notifications lost
        self._lock = threading.Lock()
        self._deliverer = Deliverer("intercom-sandbox-webhook", self._signed, DELIVERY_TIMEOUT)

    def _signed(self, body: bytes) -> dict[str, str]:
        return signed_headers(self.secret, body)

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
