"""The ``surveymonkey`` source: SurveyMonkey responses → Planhat NPS on the right enduser.

Its callbacks are thin: the worker completes each with the response from SurveyMonkey's
API (``detail``) before mapping it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.change import Change
from connectors.options import Option
from connectors.source import Credential, PrepareHook
from connectors.surveymonkey import api, mapping, verify
from connectors.surveymonkey.mapping import OPTIONS
from connectors.surveys.respondents import PREPARE


@dataclass(frozen=True, slots=True)
class SurveyMonkeySource:
    name: str = "surveymonkey"
    options: tuple[Option, ...] = OPTIONS
    checks_on_receipt: bool = False
    credentials: tuple[Credential, ...] = (
        Credential(name="access_token", help="an access token that may read responses"),
    )
    api_base: str | None = api.SURVEYMONKEY_API
    prepare: Mapping[str, PrepareHook] = field(default_factory=lambda: PREPARE)

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        client_id = environ.get("SURVEYMONKEY_CLIENT_ID")
        client_secret = environ.get("SURVEYMONKEY_CLIENT_SECRET")
        return f"{client_id}&{client_secret}" if client_id and client_secret else None

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify.verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return mapping.changes(body, event_id, options)

    def detail(self, credentials: Mapping[str, str], api_base: str | None, body: bytes) -> bytes:
        return api.complete(credentials, api_base, body)


SOURCE = SurveyMonkeySource()
