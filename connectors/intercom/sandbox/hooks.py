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

import uuid
from typing import Any

import httpx

from connectors.intercom.verify import signed_headers
from connectors.planhat.sandbox.delivery import SourceWebhook

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


class Webhook(SourceWebhook):
    """The app's webhook subscription (URL, client secret)."""

    def __init__(self, url: str | None, secret: str) -> None:
        super().__init__(
            url,
            secret,
            name="intercom-sandbox-webhook",
            signed=signed_headers,
            timeout=DELIVERY_TIMEOUT,
        )
