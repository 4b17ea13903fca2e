"""Planhat Automations, as the sandbox plays them: a webhook on every create, update and
delete of a model, whoever made it.

In Planhat an admin builds an Automation "when a record of model X is created, updated
or deleted, send a webhook" with a body and headers of their own; Planhat signs nothing.
The sandbox sends what the README's template sends: ``POST <url>`` with
``Authorization: Bearer <secret>`` and ``{"model", "_id", "action", "time"}``. It fires on
writes made through the API too, the worker's own included, as Planhat does: echo loops
are real in tests. Deliveries go out in the background, in order, one try each (a simple
automation does not retry); ``drop_rate`` loses a share of them on purpose (a missed
automation). ``POST /_sandbox/ui/{model}/{id}`` edits a record as a person in Planhat's UI
would: no token, no rate limit, not counted as an API request, and it fires too.

    GET  /_sandbox/automations     what is configured, and the counters
    POST /_sandbox/automations     {"drop_rate": 0.3}: change the share dropped
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from connectors.planhat.models import MODELS, ModelSpec
from connectors.planhat.sandbox.delivery import Deliverer
from connectors.planhat.sandbox.errors import SandboxError
from connectors.planhat.sandbox.store import Doc, Store
from connectors.planhat.sandbox.tenant import now_iso

if TYPE_CHECKING:
    from connectors.planhat.sandbox.app import Sandbox


DELIVERY_TIMEOUT = httpx.Timeout(10.0, connect=2.0)


@dataclass(slots=True)
class Counters:
    fired: int = 0  # hints made (every write of a model with an automation)
    dropped: int = 0  # lost on purpose (drop_rate)
    ui_edits: int = 0  # POST /_sandbox/ui/...


class Automations:
    """The configured automations (model → URL); hints go out through the stand-ins'
    shared deliverer (delivered: answered 2xx; failed: otherwise, not retried)."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        secret: str | None = None,
        drop_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        unknown = sorted(set(urls) - set(MODELS))
        if unknown:
            raise ValueError(f"automations on unknown models: {', '.join(unknown)}")
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError("the automation drop rate must be between 0 and 1")
        self.urls = dict(urls)
        self.secret = secret
        self.drop_rate = drop_rate
        self.counters = Counters()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        headers = {"content-type": "application/json"}
        if secret:
            headers["authorization"] = f"Bearer {secret}"
        self._deliverer = Deliverer("sandbox-automations", lambda _: headers, DELIVERY_TIMEOUT)

    def fire(self, model: str, record_id: str, action: str) -> None:
        """A record of ``model`` was created, updated or deleted: send the hint (later)."""
        url = self.urls.get(model)
        if url is None:
            return
        with self._lock:
            self.counters.fired += 1
            if self._random.random() < self.drop_rate:
                self.counters.dropped += 1
                return
        hint = {"model": model, "_id": record_id, "action": action, "time": now_iso()}
        self._deliverer.send(url, json.dumps(hint).encode())

    def count_ui_edit(self) -> None:
        with self._lock:
            self.counters.ui_edits += 1

    def pending(self) -> int:
        return self._deliverer.pending()

    def counts(self) -> dict[str, Any]:
        with self._lock:
            counters = self.counters
            own = {"fired": counters.fired, "dropped": counters.dropped,
                   "ui_edits": counters.ui_edits}  # fmt: skip
        return {**own, **self._deliverer.counts()}

    def reset(self) -> None:
        """Forget the counters (``POST /_sandbox/reset``); hints on their way still go."""
        with self._lock:
            self.counters = Counters()
        self._deliverer.reset()

    def close(self) -> None:
        self._deliverer.close()


class AutomatedStore(Store):
    """The sandbox's store, firing the automations on every write it keeps."""

    def __init__(self, path: str | None, automations: Automations) -> None:
        super().__init__(path)
        self.automations = automations

    def save(self, spec: ModelSpec, doc: Doc) -> None:
        before = self.by_id(spec.name, doc["_id"])
        super().save(spec, doc)
        action = "created" if before is None else "updated"
        self.automations.fire(_model_of(spec, doc), doc["_id"], action)

    def remove(self, spec: ModelSpec, record_id: str) -> None:
        before = self.by_id(spec.name, record_id)
        super().remove(spec, record_id)
        if before is not None:
            self.automations.fire(_model_of(spec, before), record_id, "deleted")


def _model_of(spec: ModelSpec, doc: Doc) -> str:
    """The model an automation is set on: tickets are kept as conversations of type ticket
    (https://www.planhat.com/developers/api/ticket), and an automation on tickets fires
    for them (assumed: Planhat lists tickets as a model of their own in its automations)."""
    if spec.name == "conversations" and doc.get("type") == "ticket":
        return "tickets"
    return spec.name


async def ui_edit(sandbox: Sandbox, request: Request) -> Response:
    """``POST /_sandbox/ui/{model}/{id}`` with a JSON object: a person edits the record in
    Planhat's UI (any model, tickets included: the UI is not the API)."""
    spec = MODELS.get(request.path_params["model"])
    if spec is None:
        return PlainTextResponse("no such model", status_code=404)
    try:
        data = json.loads(await request.body())
    except ValueError:
        return PlainTextResponse("expected a JSON object", status_code=400)
    if not isinstance(data, dict):
        return PlainTextResponse("expected a JSON object", status_code=400)
    try:
        doc = sandbox.tenant.update(spec, request.path_params["ref"], data)
    except SandboxError as error:
        return PlainTextResponse(error.message, status_code=error.status)
    finally:
        sandbox.store.commit()
    sandbox.automations.count_ui_edit()
    return JSONResponse(doc)


async def automations_view(sandbox: Sandbox, request: Request) -> Response:
    """``GET``: the automations and their counters; ``POST {"drop_rate": x}``: change it."""
    automations = sandbox.automations
    if request.method == "POST":
        try:
            drop_rate = float(json.loads(await request.body())["drop_rate"])
        except (ValueError, TypeError, KeyError):
            return PlainTextResponse('expected {"drop_rate": <0..1>}', status_code=400)
        if not 0.0 <= drop_rate <= 1.0:
            return PlainTextResponse("drop_rate must be between 0 and 1", status_code=400)
        automations.drop_rate = drop_rate
    return JSONResponse(
        {
            "models": automations.urls,
            "drop_rate": automations.drop_rate,
            **automations.counts(),
        }
    )
