"""Survey sources end to end: the receiver, the embedded engine, the Planhat sandbox, and a
local fake of Typeform's Responses API and SurveyMonkey's API on one HTTP server."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox, BackgroundServer
from connectors.surveymonkey.verify import sign as sm_sign
from connectors.typeform.verify import sign as tf_sign
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import migrate, session_scope
from state.tables import DeadLetter, InboxEvent
from tests.conftest import drain_embedded
from tests.test_dev_flow import UNLIMITED
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.poll import SourceApis
from worker.intake.receiver import create_web_app
from worker.runtime.embedded import LocalDispatcher, embedded_runtime
from worker.runtime.jobs import Runtime
from worker.runtime.settings import EngineSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TYPEFORM_SECRET = "typeform-secret"
SM_SECRET = "sm-client-id&sm-client-secret"
FORM = "lT4Z3j"


def typeform_event(token: str, email: str | None, score: Any, **hidden: str) -> dict[str, Any]:
    """Typeform's documented example, answered by ``email`` with ``score``."""
    event: dict[str, Any] = json.loads((FIXTURES / "typeform" / "webhook_example.json").read_text())
    response = event["form_response"]
    response["token"] = token
    response["hidden"] = {**({"email": email} if email else {}), **hidden}
    response["answers"] = [a for a in response["answers"] if a.get("type") != "email"]
    for answer in response["answers"]:
        if answer["field"]["type"] == "nps":
            answer["number"] = score
    return event


class FakeSources:
    """Typeform's ``GET /forms/{id}/responses`` and SurveyMonkey's response and survey
    details; each records the calls it answered."""

    def __init__(self) -> None:
        self.typeform_items: list[dict[str, Any]] = []
        sm = FIXTURES / "surveymonkey"
        self.sm_response: dict[str, Any] = json.loads((sm / "response_details.json").read_text())
        self.sm_survey: dict[str, Any] = json.loads((sm / "survey_details.json").read_text())
        self.calls: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/forms/{form_id}/responses", self.typeform_responses),
                Route("/v3/surveys/{sid}/responses/{rid}/details", self.sm_details),
                Route("/v3/surveys/{sid}/details", self.sm_survey_details),
            ]
        )

    async def typeform_responses(self, request: Request) -> JSONResponse:
        self.calls.append(request.url.path)
        if request.headers.get("authorization") != "Bearer tf-token":
            return JSONResponse({"code": "AUTHENTICATION_FAILED"}, status_code=401)
        since = int(request.query_params["since"])
        items = [i for i in self.typeform_items if _unix(i["submitted_at"]) >= since]
        items.sort(key=lambda i: i["submitted_at"])
        page = items[: int(request.query_params["page_size"])]
        return JSONResponse({"total_items": len(items), "page_count": 1, "items": page})

    async def sm_details(self, request: Request) -> JSONResponse:
        self.calls.append(request.url.path)
        if request.headers.get("authorization") != "Bearer sm-token":
            return JSONResponse({"error": {"message": "Invalid token"}}, status_code=401)
        if request.path_params["rid"] != self.sm_response["id"]:
            return JSONResponse({"error": {"message": "Resource not found"}}, status_code=404)
        return JSONResponse(self.sm_response)

    async def sm_survey_details(self, request: Request) -> JSONResponse:
        self.calls.append(request.url.path)
        return JSONResponse(self.sm_survey)


def _unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


class Surveys:
    def __init__(
        self,
        tmp_path: Path,
        options: dict[str, str] | None = None,
        config: EngineSettings | None = None,
        database_url: str | None = None,
        start: bool = True,
    ) -> None:
        """``start=False``: webhooks are stored but nothing is ingested until
        ``dispatcher.start()`` — a backlog that is all there when the workers start."""
        self.planhat = BackgroundSandbox(UNLIMITED).start()
        self.fake = FakeSources()
        self.sources = BackgroundServer(self.fake.app).start()
        url = database_url or f"sqlite:///{tmp_path}/state.db"
        migrate(url)
        box = SecretBox(Fernet.generate_key().decode())
        tenant = Tenant(
            name="default",
            planhat_base_url=self.planhat.url,
            planhat_token="token",
            secrets={
                "typeform": TYPEFORM_SECRET,
                "surveymonkey": SM_SECRET,
                "typeform:api_key": "tf-token",
                "surveymonkey:access_token": "sm-token",
            },
            options={"typeform.forms": FORM, **(options or {})},
        )

        def connections(engine: Engine) -> Connections:
            return Connections(engine, box=lambda: box, default=lambda: tenant)

        apis = SourceApis(typeform=self.sources.url, surveymonkey=self.sources.url)
        # Fast back-off: a respondent whose domain no company has waits its tries first.
        config = config or EngineSettings(
            flush_linger=0.05, sweep_interval=1.0, backoff_base=0.05, backoff_cap=0.2
        )
        self.runtime: Runtime
        self.dispatcher: LocalDispatcher
        self.runtime, self.dispatcher = embedded_runtime(url, connections, config, apis)
        self.apis = apis
        if start:
            self.dispatcher.start()
        app = create_web_app(
            connections=connections(self.runtime.engine),
            inbox=Inbox(ThreadedWriter(self.runtime.engine), self.dispatcher),
        )
        self.http = TestClient(app)
        self.client = PlanhatClient("check", base_url=self.planhat.url)

    def post_typeform(self, event: dict[str, Any], secret: str = TYPEFORM_SECRET) -> httpx.Response:
        body = json.dumps(event).encode()
        headers = {"content-type": "application/json", "typeform-signature": tf_sign(secret, body)}
        return self.http.post("/webhooks/default/typeform", content=body, headers=headers)

    def post_surveymonkey(self, name: str, secret: str = SM_SECRET) -> httpx.Response:
        body = (FIXTURES / "surveymonkey" / f"{name}.json").read_bytes()
        headers = {
            "content-type": "application/json",
            "sm-signature": sm_sign(secret, body),
            "sm-apikey": secret.partition("&")[0],
        }
        return self.http.post("/webhooks/default/surveymonkey", content=body, headers=headers)

    def company(self, name: str, *domains: str) -> str:
        return str(self.client.create("companies", {"name": name, "domains": list(domains)})["_id"])

    def enduser(self, email: str, company_id: str) -> str:
        return str(self.client.create("endusers", {"email": email, "companyId": company_id})["_id"])

    def drain(self, timeout: float = 60) -> None:
        drain_embedded(self.runtime.engine, self.dispatcher, timeout=timeout)

    def letters(self) -> list[DeadLetter]:
        with session_scope(self.runtime.engine) as session:
            return list(session.exec(select(DeadLetter)))

    def events(self) -> list[InboxEvent]:
        with session_scope(self.runtime.engine) as session:
            return list(session.exec(select(InboxEvent)))

    def nps(self) -> list[dict[str, Any]]:
        return list(self.client.list("nps"))

    def close(self) -> None:
        self.client.close()
        self.dispatcher.stop()
        self.sources.stop()
        self.planhat.stop()
        self.runtime.engine.dispose()
