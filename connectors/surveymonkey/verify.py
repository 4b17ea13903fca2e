"""SurveyMonkey webhook signatures.

``Sm-Signature`` = base64(HMAC-SHA1 keyed ``"<client_id>&<client_secret>"``, raw body);
``Sm-Apikey`` = the client id (https://developer.surveymonkey.com/api/v3/#api-endpoints-
webhooks). The connection's secret is ``"<client_id>&<client_secret>"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from connectors.webhooks import SignatureError, header, signed_document


def sign(secret: str, body: bytes) -> str:
    """An ``Sm-Signature`` value for ``body`` (for tests and local senders)."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
    """Check the raw ``body``; the event id once the signature holds."""
    given = header(headers, "Sm-Signature").strip()
    client_id = secret.partition("&")[0]
    api_key = headers.get("Sm-Apikey") or headers.get("sm-apikey")
    if api_key is not None and not hmac.compare_digest(api_key.encode(), client_id.encode()):
        raise SignatureError("Sm-Apikey is not this connection's SurveyMonkey client id")
    if not hmac.compare_digest(sign(secret, body).encode(), given.encode()):
        raise SignatureError("Sm-Signature does not match")
    try:
        event_id = signed_document(body, "a SurveyMonkey event")["event_id"]
    except (KeyError, TypeError):
        raise SignatureError("a signed body that is not a SurveyMonkey event") from None
    if not isinstance(event_id, str | int) or isinstance(event_id, bool) or not str(event_id):
        raise SignatureError("a SurveyMonkey event's event_id must be a string or number")
    return str(event_id)
