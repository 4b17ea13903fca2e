"""What a Planhat Automation sends, and how it is checked.

Automations sign nothing and send what the admin wrote (planhat-api.md), so the admin
puts a secret in a header, ``Authorization: Bearer <secret>``, compared in constant time.
The body is a hint, at least ``{"model": "tasks", "_id": "…"}``; the README's template
also sends ``"action": "<created|updated|deleted>"`` and ``"time": "<<time.now>>"``.
Nothing else in it is trusted: the engine re-reads the record it names.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from connectors.change import MappingError
from connectors.planhat.models import UnknownModelError, model_spec
from connectors.source import Hint
from connectors.webhooks import SignatureError, header, signed_document

PLANHAT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # an ObjectId: 24 hex characters
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")


def check_bearer(headers: Mapping[str, str], secret: str) -> None:
    """``Authorization: Bearer <secret>``; SignatureError unless it is that secret."""
    scheme, _, value = header(headers, "authorization").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        value.strip().encode(), secret.encode()
    ):
        raise SignatureError("the Authorization header does not carry this connection's secret")


def read_hint(document: Any) -> Hint:
    """The record a hint names; MappingError saying what is missing."""
    if not isinstance(document, dict):
        raise MappingError('a Planhat hint is an object: {"model": …, "_id": …}')
    try:
        spec = model_spec(str(document.get("model")))
    except UnknownModelError as error:
        raise MappingError(f"the hint's model: {error}") from None
    planhat_id = document.get("_id")
    if not isinstance(planhat_id, str) or not PLANHAT_ID.fullmatch(planhat_id):
        raise MappingError("the hint's _id must be a Planhat record id")
    action = document.get("action", "updated")
    return Hint(model=spec.name, planhat_id=planhat_id, deleted=action == "deleted")


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
    """Check the bearer secret, then that the body names a record; the event id.

    The event id. Automations have no delivery id of their own, and two edits of one
    record send the same body unless it carries a time; yet a hint lost as a duplicate is
    an edit never written back. So: an ``Idempotency-Key`` header if the admin sets one;
    else the model, the ``_id`` and a hash of the body, and when the body has no "time"
    the second it arrived too. A redelivery of one hint is then a duplicate (200), and a
    later edit is a new event. A hint taken twice costs one re-read: the record then hashes
    as last read, and nothing more happens."""
    check_bearer(headers, secret)
    document = signed_document(body, 'a Planhat hint {"model": …, "_id": …}')
    try:
        hint = read_hint(document)
    except MappingError as error:
        raise SignatureError(f"an authenticated body that is not a Planhat hint: {error}") from None
    given = headers.get("idempotency-key") or headers.get("Idempotency-Key")
    if given and IDEMPOTENCY_KEY.fullmatch(given):
        return f"{hint.model}:{hint.planhat_id}:{given}"
    digest = hashlib.sha256(body)
    if not (isinstance(document, dict) and document.get("time")):
        digest.update(f"@{int(now)}".encode())
    return f"{hint.model}:{hint.planhat_id}:{digest.hexdigest()[:32]}"
