"""Stripe webhook signatures, checked as Stripe's SDKs do.

``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]``: hex HMAC-SHA256, keyed with
the ``whsec_…`` string's own bytes, of ``"{t}.{raw body}"``. Any ``v1`` may match (secret
rotation); other schemes (``v0``) are ignored; 300 s tolerance
(https://docs.stripe.com/webhooks#verify-manually).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from connectors.webhooks import SignatureError, header, signed_document, unix_time

TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """A ``Stripe-Signature`` value for ``body`` (for tests and local senders)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
    """Check the raw ``body``; the event id (``evt_…``) once the signature holds."""
    value = header(headers, "Stripe-Signature")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in value.split(","):
        name, _, item = part.strip().partition("=")
        if name == "t":
            timestamp = unix_time(item, "Stripe-Signature t=")
        elif name == "v1":
            candidates.append(item)
    if timestamp is None or not candidates:
        raise SignatureError("Stripe-Signature needs t= and at least one v1=")
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError("Stripe-Signature timestamp is more than 300 s from now")
    # Bytes, not str: compare_digest raises TypeError on a str that is not ASCII, and a
    # header may hold any byte (read as latin-1).
    expected = sign(secret, timestamp, body).rsplit("=", 1)[1].encode()
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in candidates):
        raise SignatureError("no Stripe-Signature v1 matches")
    try:
        event_id = signed_document(body, "a Stripe event")["id"]
    except (KeyError, TypeError):
        raise SignatureError("a signed body that is not a Stripe event") from None
    if not isinstance(event_id, str) or not event_id:
        raise SignatureError("a Stripe event's id must be a non-empty string")
    return event_id
