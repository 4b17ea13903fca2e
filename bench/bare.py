"""The bare endpoint the receiver is measured against: verify the signature, answer 202.

The same framework, HTTP server and signature check as ``planhat-sync web``, and nothing
else (no connection lookup, no database, no broker): what the machine can do at best.

    uvicorn bench.bare:create_app --factory --http worker.intake.serving:GuardedHttpToolsProtocol
"""

from __future__ import annotations

import os
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connectors.sources import SOURCES
from connectors.webhooks import SignatureError


def create_app() -> FastAPI:
    secret = os.environ["STANDARD_WEBHOOK_SECRET"]
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.post("/webhooks/{connection}/{source}", status_code=202)
    async def receive(connection: str, source: str, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            event_id = SOURCES[source].verify(request.headers, body, secret, time.time())
        except SignatureError as error:
            return JSONResponse({"error": str(error)}, status_code=401)
        return JSONResponse({"status": "accepted", "event_id": event_id}, status_code=202)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app
