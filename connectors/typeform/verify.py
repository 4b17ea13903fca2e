"""Typeform webhook signatures.

``Typeform-Signature: sha256=<base64 HMAC-SHA256(secret, raw body)>``, compared in
constant time (https://www.typeform.com/developers/webhooks/secure-your-webhooks/).
Typeform sends no timestamp, so there is no replay window; a replayed delivery is a
duplicate of its response token and stores nothing new.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from connectors.webhooks import SignatureError, header, signed_document


def sign(secret: str, body: bytes) -> str:
    """A ``Typeform-Signature`` value for ``body`` (for tests and local senders)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
    """Check the raw ``body``; the response token once the signature holds. The token,
    not the delivery's event_id, is the event id: a response is delivered by webhook and
    found again by the poller, and is one event either way."""
    value = header(headers, "Typeform-Signature").strip()
    if not value.startswith("sha256="):
        raise SignatureError("Typeform-Signature must be sha256=<base64>")
    if not hmac.compare_digest(sign(secret, body).encode(), value.encode()):
        raise SignatureError("Typeform-Signature does not match")
    try:
        token = signed_document(body, "a Typeform form_response")["form_response"]["token"]
    except (KeyError, TypeError):
        raise SignatureError("a signed body that is not a Typeform form_response") from None
    if not isinstance(token, str) or not token:
        raise SignatureError("a Typeform response's token must be a non-empty string")
    return token
