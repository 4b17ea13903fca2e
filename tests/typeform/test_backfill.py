"""A Typeform backfill is its poll feed read from the beginning (or --since): every
response of the forms the connection names, stored as its webhook would have been (keyed
by token), once; run again, all already known."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.planhat.sandbox.server import BackgroundServer
from state.connections import Tenant
from state.db import make_engine, migrate, session_scope
from state.tables import Cursor, InboxEvent
from tests.stripe.test_backfill import Seen
from tests.typeform.test_typeform import example
from worker.intake import backfill
from worker.intake.poll import SourceApis

START = 1_700_000_000


class Responses:
    """``GET /forms/{id}/responses`` as Typeform answers it: ``since`` inclusive,
    ``page_size``, oldest first with ``sort=submitted_at,asc``."""

    def __init__(self, count: int) -> None:
        item = example()["form_response"]
        self.items = []
        for n in range(count):
            response = copy.deepcopy(item) | {"token": f"tok{n:04d}"}
            response["submitted_at"] = datetime.fromtimestamp(START + n, UTC).isoformat()
            self.items.append(response)
        self.asked: list[dict[str, str]] = []
        self.app = Starlette(routes=[Route("/forms/{form_id}/responses", self.list)])

    async def list(self, request: Request) -> JSONResponse:
        params = dict(request.query_params)
        self.asked.append({"form": request.path_params["form_id"], **params})
        since, size = int(params.get("since", 0)), int(params["page_size"])

        def at(item: dict[str, Any]) -> float:
            return datetime.fromisoformat(item["submitted_at"]).timestamp()

        matching = [item for item in self.items if at(item) >= since]
        return JSONResponse({"total_items": len(matching), "items": matching[:size]})


@pytest.fixture
def responses() -> Iterator[tuple[Responses, str]]:
    fake = Responses(30)
    server = BackgroundServer(fake.app).start()
    yield fake, server.url
    server.stop()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


TENANT = Tenant(
    name="default",
    planhat_base_url="http://127.0.0.1:9",
    planhat_token="t",
    secrets={"typeform:api_key": "tf_key"},
    options={"typeform.forms": "nps1"},
)


def run(engine: Engine, url: str, since: int | None = None) -> list[backfill.Tally]:
    found = backfill.readers(TENANT, "typeform", SourceApis(typeform=url), since)
    return backfill.run(engine, TENANT, "typeform", found, since=since, submit=None,
                        progress=Seen())  # fmt: skip


def test_a_typeform_backfill_reads_every_response_once(
    engine: Engine, responses: tuple[Responses, str]
) -> None:
    fake, url = responses

    first = run(engine, url)
    again = run(engine, url)

    # A second round from the newest response seen brings nothing newer: done.
    assert [(t.name, t.pages, t.stored, t.known) for t in first] == [("typeform:nps1", 2, 30, 1)]
    assert [(t.stored, t.known) for t in again] == [(0, 31)]
    assert [asked["since"] for asked in fake.asked[:2]] == ["0", str(START + 29)]
    with session_scope(engine) as session:
        stored = list(session.exec(select(InboxEvent)))
        assert sorted(event.event_id for event in stored) == [f"tok{n:04d}" for n in range(30)]
        assert {event.dispatched_at for event in stored} == {None}  # the sweeper hands on
        assert list(session.exec(select(Cursor))) == []


def test_since_starts_the_feed_there(engine: Engine, responses: tuple[Responses, str]) -> None:
    fake, url = responses

    [tally] = run(engine, url, since=START + 20)

    assert (tally.stored, fake.asked[0]["since"]) == (10, str(START + 20))


def test_a_connection_naming_no_form_says_so(engine: Engine) -> None:
    tenant = Tenant(name="default", planhat_base_url="http://127.0.0.1:9", planhat_token="t",
                    secrets={"typeform:api_key": "tf_key"})  # fmt: skip

    with pytest.raises(backfill.BackfillError, match="typeform's options name nothing to read"):
        backfill.readers(tenant, "typeform", SourceApis(), None)
