"""Standard Webhooks signatures (https://www.standardwebhooks.com, "Verifying webhooks").

``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` where the key
is the base64 part of a ``whsec_…`` secret. Several space-separated signatures may be sent
(secret rotation): any one that matches will do. Timestamps outside 5 minutes either way
are refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from connectors.webhooks import SignatureError, header, unix_time

TOLERANCE_SECONDS = 5 * 60


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from None


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value a sender puts on ``body`` (for senders and tests)."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, event_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Every header a sender puts on a standard event (for senders, tests and the bench)."""
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, event_id, timestamp, body),
    }


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
    """Check the raw ``body`` against its signature; the event id (``webhook-id``)."""
    event_id = header(headers, "webhook-id")
    raw_timestamp = header(headers, "webhook-timestamp")
    signatures = header(headers, "webhook-signature")
    timestamp = unix_time(raw_timestamp, "webhook-timestamp")
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp is more than 5 minutes from now")
    expected = sign(secret, event_id, timestamp, body).split(",", 1)[1].encode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return event_id
    raise SignatureError("no webhook-signature matches")
