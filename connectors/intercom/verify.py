"""Intercom webhook signatures, checked as Intercom documents them.

``X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body>``, keyed with the app's client
secret (https://developers.intercom.com/docs/build-an-integration/learn-more/webhooks/,
"Signed notifications"), compared in constant time. The event id is the notification's
``id`` (``notif_…``).

Intercom signs no timestamp, so no signature can expire and there is no replay window as
Stripe's or Zendesk's. A replay is bounded otherwise: a notification's ``id`` is the inbox
key, so the same delivery again stores nothing; and a notification is never mapped from
what it carries but from the ticket as REST gives it when it is completed
(``source.detail``), versioned by the ticket's ``updated_at``: a replayed old notification
can only bring the ticket's current state, which the hash rule drops as unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from connectors.webhooks import SignatureError, header, signed_document

SIGNATURE = "X-Hub-Signature"
PREFIX = "sha1="


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Intercom puts on ``body`` (for the stand-in, tests)."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"content-type": "application/json", SIGNATURE: sign(secret, body)}


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
    """Check the raw ``body``; the notification's ``id`` once the signature holds."""
    given = header(headers, SIGNATURE).strip()
    if not given.startswith(PREFIX):
        raise SignatureError(f"{SIGNATURE} must be sha1=<hex>")
    # Hex digits are compared lower case: RFC 2104 says nothing of their case.
    if not hmac.compare_digest(given.lower().encode(), sign(secret, body).encode()):
        raise SignatureError(f"no {SIGNATURE} matches")
    try:
        event_id = signed_document(body, "an Intercom notification")["id"]
    except (KeyError, TypeError):
        raise SignatureError("a signed body that is not an Intercom notification") from None
    if not isinstance(event_id, str) or not event_id:
        raise SignatureError("an Intercom notification's id must be a non-empty string")
    return event_id
