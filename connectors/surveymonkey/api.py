"""Complete a SurveyMonkey event: its callback names a response but carries no answers.

``GET /v3/surveys/{survey_id}/responses/{response_id}/details`` gives the answers as ids;
``GET /v3/surveys/{survey_id}/details`` says what those ids are (which question, which
choice); https://developer.surveymonkey.com/api/v3/#api-endpoints-survey-responses.
The worker fetches both before mapping (outside any transaction) and keeps them with the
stored event, so mapping stays pure and a replay reads what was fetched.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
from cachetools import TTLCache

from connectors.source import CannotComplete
from connectors.tls import tls
from connectors.webhooks import load_json

SURVEYMONKEY_API = "https://api.surveymonkey.com"
RESPONSE_EVENTS = frozenset({"response_completed", "response_updated"})
SURVEY_TTL = 600.0  # seconds a survey's details are reused
# Surveys kept at most (least recently used go first): a survey's details run to tens of
# kilobytes, and a process serving many accounts sees many surveys.
SURVEYS_CACHED = 256


def surveymonkey_client(access_token: str, base_url: str = SURVEYMONKEY_API) -> httpx.Client:
    return httpx.Client(
        verify=tls(),
        base_url=base_url,
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=httpx.Timeout(30.0, connect=5.0),
        follow_redirects=False,
    )


class Surveys:
    """Survey details by (base URL, survey id), cached: they change rarely."""

    def __init__(self, maxsize: int = SURVEYS_CACHED, ttl: float = SURVEY_TTL) -> None:
        self._cache: TTLCache[tuple[str, str], Any] = TTLCache(
            maxsize=maxsize, ttl=ttl, timer=time.monotonic
        )
        self._lock = threading.Lock()

    def get(self, client: httpx.Client, survey_id: str) -> Any:
        key = (str(client.base_url), survey_id)
        with self._lock:
            try:
                return self._cache[key]
            except KeyError:  # never fetched, expired or evicted
                pass
        response = client.get(f"/v3/surveys/{survey_id}/details")
        response.raise_for_status()
        survey = response.json()
        with self._lock:
            self._cache[key] = survey
        return survey


SURVEYS = Surveys()


def callback(body: bytes) -> tuple[Any, str, str]:
    """The callback, its survey id and response id; ValueError if it names neither."""
    try:
        event = load_json(body)
        if event.get("event_type") not in RESPONSE_EVENTS:
            return event, "", ""
        return event, str(event["resources"]["survey_id"]), str(event["object_id"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"the callback names no survey and response: {error!r}") from None


def detail(client: httpx.Client, body: bytes) -> bytes:
    """The document the mapping reads: ``{"event", "response", "survey"}`` (just the event
    for event types that name no response)."""
    event, survey_id, response_id = callback(body)
    if event.get("event_type") not in RESPONSE_EVENTS:
        return json.dumps({"event": event}).encode()
    response = client.get(f"/v3/surveys/{survey_id}/responses/{response_id}/details")
    response.raise_for_status()
    document = {
        "event": event,
        "response": response.json(),
        "survey": SURVEYS.get(client, survey_id),
    }
    return json.dumps(document).encode()


def complete(credentials: Mapping[str, str], api_base: str | None, body: bytes) -> bytes:
    """``detail`` with the connection's access token; ``CannotComplete`` when asking again
    cannot help (no token, a callback naming nothing, 401/403/404)."""
    token = credentials.get("access_token")
    if not token:
        raise CannotComplete(
            "no SurveyMonkey access token to fetch the response with: set "
            "SURVEYMONKEY_ACCESS_TOKEN (default) or --secret surveymonkey:access_token=…"
        )
    try:
        callback(body)
    except ValueError as error:  # never gets better by asking again
        raise CannotComplete(str(error)) from None
    with surveymonkey_client(token, api_base or SURVEYMONKEY_API) as client:
        try:
            return detail(client, body)
        except httpx.HTTPStatusError as error:
            if error.response.status_code in (401, 403, 404):
                raise CannotComplete(
                    f"SurveyMonkey answered {error.response.status_code} for "
                    f"{error.request.url.path}: {error.response.text[:200]}"
                ) from None
            raise
