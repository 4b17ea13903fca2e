"""Fetch Typeform responses from its Responses API, so responses a webhook never delivered
still arrive.

``GET /forms/{form_id}/responses?since=<unix s>&page_size=1000&sort=submitted_at,asc``
(https://www.typeform.com/developers/responses/reference/retrieve-responses/); the next
page asks again from the last response's ``submitted_at`` (inclusive; duplicates are
dropped by token). Responses can appear up to ~30 minutes late, hence a long look-back.
Each response is stored as the webhook would have sent it, keyed by its token, so a
response both delivered and polled is one event.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx

from connectors.source import Feed
from connectors.tls import tls

TYPEFORM_API = "https://api.typeform.com"
PAGE = 1000
LOOKBACK_SECONDS = 3600


def typeform_client(token: str, base_url: str = TYPEFORM_API) -> httpx.Client:
    return httpx.Client(
        verify=tls(),
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(30.0, connect=5.0),
        follow_redirects=False,
    )


def submitted(event: Any) -> int:
    """A stored response's ``submitted_at`` as unix seconds (the poll cursor)."""
    text = str(event["form_response"]["submitted_at"]).replace("Z", "+00:00")
    return int(datetime.fromisoformat(text).timestamp())


def responses_since(
    client: httpx.Client, form_id: str, since: int, *, max_pages: int = 1000
) -> list[Any]:
    """Every response to ``form_id`` submitted at or after ``since``, as webhook events."""
    seen: dict[str, Any] = {}
    for _ in range(max_pages):
        params: dict[str, str | int] = {
            "since": since,
            "page_size": PAGE,
            "sort": "submitted_at,asc",
        }
        response = client.get(f"/forms/{form_id}/responses", params=params)
        response.raise_for_status()
        items = response.json().get("items") or []
        for item in items:
            event = {"event_id": f"poll-{item['token']}", "event_type": "form_response",
                     "form_response": {"form_id": form_id, **item}}  # fmt: skip
            seen.setdefault(str(item["token"]), event)
        if len(items) < PAGE:
            break
        last = submitted(seen[str(items[-1]["token"])])
        if last <= since:  # a whole page in one second: nothing more to page by
            break
        since = last
    return sorted(seen.values(), key=lambda e: (submitted(e), e["form_response"]["token"]))


def _token(event: Any) -> str:
    return str(event["form_response"]["token"])  # the event id, as connectors/typeform/verify


def form_feed(form_id: str) -> Feed:
    return Feed(
        "typeform",
        lambda client, since: responses_since(client, form_id, since),
        submitted,
        _token,
        LOOKBACK_SECONDS,
        cursor=f"typeform:{form_id}",
    )


def feeds(
    credentials: Mapping[str, str], forms: str, api_base: str | None
) -> Iterator[tuple[Feed, httpx.Client]]:
    """One feed per form in ``forms`` (the ``typeform.forms`` option), given a token."""
    if key := credentials.get("api_key"):
        for form_id in filter(None, (form.strip() for form in forms.split(","))):
            yield form_feed(form_id), typeform_client(key, api_base or TYPEFORM_API)
