"""Chargebee webhook authentication: HTTP Basic credentials, compared in constant time.

Chargebee signs nothing; a webhook may carry the username and password set on it in
Chargebee (https://www.chargebee.com/docs/2.0/webhook_settings.html). The connection's
secret is ``"<username>:<password>"``; a username holds no colon (RFC 7617).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from connectors.webhooks import SignatureError, header, signed_document


def basic_auth(username: str, password: str) -> str:
    """An ``Authorization`` value (for tests and local senders)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
    """Check the credentials; the event id (``ev_…``) once they hold."""
    scheme, _, encoded = header(headers, "Authorization").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise SignatureError("Authorization must be HTTP Basic")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("Authorization Basic credentials are not base64") from None
    # One comparison over "user:password", so neither part's length or match leaks.
    if not hmac.compare_digest(given, secret.encode()):
        raise SignatureError("wrong Chargebee webhook username or password")
    try:
        event_id = signed_document(body, "a Chargebee event")["id"]
    except (KeyError, TypeError):
        raise SignatureError("an authenticated body that is not a Chargebee event") from None
    if not isinstance(event_id, str) or not event_id:
        raise SignatureError("a Chargebee event's id must be a non-empty string")
    return event_id
