"""The ``surveymonkey`` source: SurveyMonkey responses → Planhat NPS on the right enduser.

Its callbacks are thin: the worker completes each with the response from SurveyMonkey's
API (``needs_detail``) before mapping it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.change import Change
from connectors.options import Option
from connectors.surveymonkey import mapping, verify
from connectors.surveymonkey.mapping import OPTIONS


@dataclass(frozen=True, slots=True)
class SurveyMonkeySource:
    name: str = "surveymonkey"
    options: tuple[Option, ...] = OPTIONS
    needs_detail: bool = True
    checks_on_receipt: bool = False

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        client_id = environ.get("SURVEYMONKEY_CLIENT_ID")
        client_secret = environ.get("SURVEYMONKEY_CLIENT_SECRET")
        return f"{client_id}&{client_secret}" if client_id and client_secret else None

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify.verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return mapping.changes(body, event_id, options)


SOURCE = SurveyMonkeySource()
