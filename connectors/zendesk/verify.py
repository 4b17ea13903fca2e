"""Zendesk webhook signatures, checked as Zendesk documents them.

``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(signing secret, timestamp + raw
body)) with ``X-Zendesk-Webhook-Signature-Timestamp`` the ISO-8601 time it was signed
(https://developer.zendesk.com/documentation/webhooks/verifying/). Zendesk documents no
replay window; like the other sources, a timestamp more than 5 minutes from now is
refused, so a captured delivery cannot be replayed later. The event id is the envelope's
``id`` (event webhooks: ``zen:event-type:…``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

from connectors.webhooks import SignatureError, header, signed_document

TOLERANCE_SECONDS = 300
SIGNATURE = "X-Zendesk-Webhook-Signature"
TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
MAX_TIMESTAMP = 40  # characters of an ISO-8601 time with fractions and an offset


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature Zendesk puts on ``body`` (for the stand-in and tests)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_headers(secret: str, body: bytes, when: datetime) -> dict[str, str]:
    timestamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "content-type": "application/json",
        SIGNATURE: sign(secret, timestamp, body),
        TIMESTAMP: timestamp,
    }


def _seconds(value: str) -> float:
    if len(value) > MAX_TIMESTAMP or not value.isascii():
        raise SignatureError(f"{TIMESTAMP} is not an ISO-8601 time")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(f"{TIMESTAMP} is not an ISO-8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
    """Check the raw ``body``; the envelope's ``id`` once the signature holds."""
    signature = header(headers, SIGNATURE)
    timestamp = header(headers, TIMESTAMP)
    if abs(now - _seconds(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureError(f"{TIMESTAMP} is more than 5 minutes from now")
    expected = sign(secret, timestamp, body).encode()
    if not hmac.compare_digest(signature.strip().encode(), expected):
        raise SignatureError(f"no {SIGNATURE} matches")
    try:
        event_id = signed_document(body, "a Zendesk event")["id"]
    except (KeyError, TypeError):
        raise SignatureError("a signed body that is not a Zendesk event") from None
    if not isinstance(event_id, str | int) or isinstance(event_id, bool) or event_id == "":
        raise SignatureError("a Zendesk event's id must be a non-empty string")
    return str(event_id)
