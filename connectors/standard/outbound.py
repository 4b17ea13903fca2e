"""The ``standard`` source's other direction: changes made in Planhat, sent as Standard
Webhooks to the connection's ``standard.outbound_url``.

The body is the shape the inbound side accepts, plus the Planhat ``_id``:

    {"model": "tickets", "key": {"sourceId": "t-1"}, "fields": {"status": "closed"},
     "version": "2026-01-01T10:00:00.123000Z", "_id": "651f…"}

(``"deleted": true`` and no fields when the record was deleted in Planhat), signed with
the connection's standard secret exactly as ``verify.py`` checks it. ``webhook-id`` is
stable per record version: a retry is the same delivery, the next version another, so the
receiver can deduplicate. Its answer decides: 2xx taken; 429 wait (``Retry-After``); 5xx,
408, 409, 425 and no answer retried; anything else refused, with its answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.planhat.errors import DEFAULT_RATE_LIMIT_WAIT, rate_limit_wait
from connectors.source import (
    TargetRateLimited,
    TargetRefused,
    TargetUnavailable,
    WriteBack,
    WriteBackContext,
)
from connectors.standard.verify import signed_headers

RETRYABLE = frozenset({408, 409, 423, 425})
ANSWER_CHARS = 500  # of the receiver's answer kept in a dead letter


def models(options: Mapping[str, str]) -> frozenset[str]:
    return frozenset(m.strip() for m in options.get("outbound_models", "").split(",") if m)


def iso(version: int) -> str:
    """A Planhat version (microseconds since the epoch) as the ISO time it was."""
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=version)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def body(change: WriteBack) -> bytes:
    document: dict[str, Any] = {
        "model": change.model,
        "key": {change.key_field: change.key},
        "fields": dict(change.fields),
        "version": iso(change.version),
        "_id": change.planhat_id,
    }
    if change.deleted:
        document["deleted"] = True
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def send(context: WriteBackContext, change: WriteBack) -> None:
    url = context.options.get("outbound_url", "")
    if not url:
        raise TargetRefused("standard.outbound_url is not set for this connection")
    if not context.secret:
        raise TargetRefused("the connection has no standard secret to sign with")
    payload = body(change)
    headers = signed_headers(context.secret, change.delivery_id, payload, int(time.time()))
    try:
        answer = context.http.post(url, content=payload, headers=headers)
    except httpx.HTTPError as error:
        why = type(error).__name__
        raise TargetUnavailable(f"no answer from the outbound URL: {why}") from None
    status = answer.status_code
    if 200 <= status < 300:
        return
    said = f"{status}: {answer.text[:ANSWER_CHARS]}"
    if status == 429:
        wait = rate_limit_wait(answer)  # Retry-After or X-Rate-Limit-Reset, when it says
        raise TargetRateLimited(
            f"the outbound URL answered {said}", DEFAULT_RATE_LIMIT_WAIT if wait is None else wait
        )
    if status >= 500 or status in RETRYABLE:
        raise TargetUnavailable(f"the outbound URL answered {said}")
    raise TargetRefused(f"the outbound URL answered {said}")
