"""Signing a delivery the way each source's sender does: the inverse of its ``verify``.

For trying a source locally (``planhat-sync send --source stripe @event.json``): the
headers Stripe, Chargebee, Typeform, … would put on that body, made with the secret the
receiver checks it with (the same string: ``user:password`` for Chargebee,
``client_id&client_secret`` for SurveyMonkey). Each uses the source's own ``sign``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from connectors.chargebee.verify import basic_auth
from connectors.intercom.verify import signed_headers as intercom_headers
from connectors.standard.verify import signed_headers as standard_headers
from connectors.stripe.verify import sign as stripe_sign
from connectors.surveymonkey.verify import sign as surveymonkey_sign
from connectors.typeform.verify import sign as typeform_sign
from connectors.zendesk.verify import signed_headers as zendesk_headers

# (secret, raw body, now in Unix seconds) → the headers that sender puts on the request
Signer = Callable[[str, bytes, float], dict[str, str]]
JSON = {"content-type": "application/json"}


def _standard(secret: str, body: bytes, now: float) -> dict[str, str]:
    # The event id travels in a header: a new one per send, so each is a new event.
    return standard_headers(secret, f"send-{uuid.uuid4()}", body, int(now))


def _stripe(secret: str, body: bytes, now: float) -> dict[str, str]:
    return {**JSON, "Stripe-Signature": stripe_sign(secret, int(now), body)}


def _chargebee(secret: str, body: bytes, now: float) -> dict[str, str]:
    username, sep, password = secret.partition(":")
    if not sep:
        raise ValueError("a Chargebee secret is USERNAME:PASSWORD")
    return {**JSON, "Authorization": basic_auth(username, password)}


def _typeform(secret: str, body: bytes, now: float) -> dict[str, str]:
    return {**JSON, "Typeform-Signature": typeform_sign(secret, body)}


def _surveymonkey(secret: str, body: bytes, now: float) -> dict[str, str]:
    client_id, sep, _ = secret.partition("&")
    if not sep:
        raise ValueError("a SurveyMonkey secret is CLIENT_ID&CLIENT_SECRET")
    return {**JSON, "Sm-Signature": surveymonkey_sign(secret, body), "Sm-Apikey": client_id}


def _zendesk(secret: str, body: bytes, now: float) -> dict[str, str]:
    return zendesk_headers(secret, body, datetime.fromtimestamp(now, UTC))


def _intercom(secret: str, body: bytes, now: float) -> dict[str, str]:
    return intercom_headers(secret, body)


def _planhat(secret: str, body: bytes, now: float) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {secret}"}  # an Automation's header


SIGNERS: dict[str, Signer] = {
    "standard": _standard,
    "stripe": _stripe,
    "chargebee": _chargebee,
    "typeform": _typeform,
    "surveymonkey": _surveymonkey,
    "zendesk": _zendesk,
    "intercom": _intercom,
    "planhat": _planhat,
}


def signed_for(source: str, secret: str, body: bytes, now: float) -> dict[str, str]:
    """The headers ``source``'s sender puts on ``body``; ``KeyError`` for a source with
    no signer, ``ValueError`` for a secret not in that source's shape."""
    return SIGNERS[source](secret, body, now)
