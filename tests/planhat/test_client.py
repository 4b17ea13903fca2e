"""PlanhatClient over httpx.MockTransport: a fake Planhat server, fake sleep, pinned jitter."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import structlog

from connectors.planhat.bulk import Outcome
from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import (
    DEFAULT_RATE_LIMIT_WAIT,
    FatalError,
    NotFoundError,
    RateLimitedError,
    RejectedError,
    RetryableError,
)
from connectors.planhat.models import UnknownModelError, UnsupportedOperationError
from connectors.planhat.retry import RetryPolicy

TOKEN = "ph-secret-token-0123456789abcdef"

Answer = Callable[[httpx.Request], httpx.Response]


def reply(
    status: int = 200, body: Any = None, *, text: str | None = None, **headers: str
) -> Answer:
    """An answer with a JSON ``body`` (or a ``text`` body) and headers."""

    def answer(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json={} if body is None else body, headers=headers)

    return answer


def fail(error: type[httpx.TransportError]) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return answer


def bulk_echo(request: httpx.Request) -> httpx.Response:
    """Planhat creating every item of a bulk upsert and naming it by sourceId."""
    items = json.loads(request.content)
    keys = [{"_id": f"id-{item['sourceId']}", "sourceId": item["sourceId"]} for item in items]
    return httpx.Response(200, json={"created": len(items), "insertsKeys": keys})


class FakePlanhat:
    """Answers requests in the order given (the last answer repeats) and records them."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request)

    def client(self, retry: RetryPolicy | None = None) -> PlanhatClient:
        return PlanhatClient(
            TOKEN,
            transport=httpx.MockTransport(self.handle),
            retry=retry,
            sleep=self.sleeps.append,
            jitter=lambda ceiling: ceiling,
        )

    @property
    def methods(self) -> list[str]:
        return [request.method for request in self.requests]


BACKOFF = RetryPolicy(attempts=5, base_delay=0.5, max_delay=1.5)

# --- authentication and secrecy ---------------------------------------------------------


def test_requests_carry_the_token_as_a_bearer_header() -> None:
    server = FakePlanhat(reply(200, {"_id": "1"}))
    with server.client() as client:
        client.get("companies", "1")

    assert server.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_repr_does_not_show_the_token() -> None:
    client = FakePlanhat(reply()).client()

    assert TOKEN not in repr(client)
    assert "api.planhat.com" in repr(client)


def test_the_token_never_reaches_the_logs() -> None:
    server = FakePlanhat(reply(500, text="boom"), reply(200, {"_id": "1"}))
    with structlog.testing.capture_logs() as logs, server.client(BACKOFF) as client:
        client.get("companies", "1")

    assert any(entry["event"] == "planhat.retry" for entry in logs)
    assert TOKEN not in repr(logs)


# --- listing ----------------------------------------------------------------------------


def test_list_pages_with_limit_and_offset_until_a_short_page() -> None:
    pages = [[{"n": 1}, {"n": 2}], [{"n": 3}, {"n": 4}], [{"n": 5}]]
    server = FakePlanhat(*(reply(200, page) for page in pages))

    with server.client() as client:
        records = list(client.list("companies", page_size=2))

    assert [record["n"] for record in records] == [1, 2, 3, 4, 5]
    assert [r.url.params["offset"] for r in server.requests] == ["0", "2", "4"]
    assert {r.url.params["limit"] for r in server.requests} == {"2"}
    assert {r.url.path for r in server.requests} == {"/companies"}


def test_list_stops_on_an_empty_page() -> None:
    server = FakePlanhat(reply(200, [{"n": 1}, {"n": 2}]), reply(200, []))

    with server.client() as client:
        records = list(client.list("endusers", page_size=2))

    assert len(records) == 2
    assert len(server.requests) == 2


def test_list_page_passes_sort_select_and_company_ids() -> None:
    server = FakePlanhat(reply(200, []))

    with server.client() as client:
        client.list_page(
            "licenses",
            limit=50,
            offset=100,
            sort="-updatedAt",
            select=["mrr", "externalId"],
            company_ids=["c1", "c2"],
        )

    assert dict(server.requests[0].url.params) == {
        "limit": "50",
        "offset": "100",
        "sort": "-updatedAt",
        "select": "mrr,externalId",
        "companyId": "c1,c2",
    }


# --- rate limits ------------------------------------------------------------------------


def test_429_waits_retry_after_then_retries() -> None:
    server = FakePlanhat(reply(429, text="Too many requests", **{"Retry-After": "3"}), reply())

    with server.client() as client:
        client.get("companies", "1")

    assert server.sleeps == [3.0]
    assert len(server.requests) == 2


def test_rate_limit_wait_is_not_an_attempt() -> None:
    limited = reply(429, text="Too many requests", **{"Retry-After": "3"})
    server = FakePlanhat(limited, limited, limited, reply(200, {"_id": "ok"}))

    with server.client(RetryPolicy(attempts=1)) as client:
        record = client.get("companies", "1")

    assert record == {"_id": "ok"}
    assert server.sleeps == [3.0, 3.0, 3.0]


def test_429_without_retry_after_waits_the_first_guess() -> None:
    server = FakePlanhat(reply(429, text="Too many requests"), reply())

    with server.client() as client:
        client.get("companies", "1")

    assert server.sleeps == [DEFAULT_RATE_LIMIT_WAIT] == [15.0]


def test_retry_after_zero_still_waits_a_second_and_ends() -> None:
    # given a Planhat that keeps answering 429 with "Retry-After: 0"
    server = FakePlanhat(reply(429, text="Too many requests", **{"Retry-After": "0"}))

    # when the client may wait 3 s in all, it waits a second each time, then gives up
    with (
        server.client(RetryPolicy(max_rate_limit_wait=3)) as client,
        pytest.raises(RateLimitedError),
    ):
        client.get("companies", "1")

    assert server.sleeps == [1.0, 1.0, 1.0]


def test_rate_limit_beyond_max_wait_raises_with_retry_after() -> None:
    server = FakePlanhat(reply(429, text="Too many requests", **{"Retry-After": "3"}))

    with (
        server.client(RetryPolicy(max_rate_limit_wait=5)) as client,
        pytest.raises(RateLimitedError) as caught,
    ):
        client.get("companies", "1")

    assert caught.value.retry_after == 3.0
    assert server.sleeps == [3.0]
    assert len(server.requests) == 2


# --- retries ----------------------------------------------------------------------------


def test_500_on_get_backs_off_exponentially_up_to_the_cap_then_raises() -> None:
    server = FakePlanhat(reply(500, text="oops"))

    with server.client(BACKOFF) as client, pytest.raises(RetryableError):
        client.get("companies", "1")

    assert server.sleeps == [0.5, 1.0, 1.5, 1.5]
    assert len(server.requests) == 5


def test_get_succeeds_after_two_500s() -> None:
    server = FakePlanhat(reply(500), reply(502), reply(200, {"_id": "1", "name": "Acme"}))

    with server.client(BACKOFF) as client:
        record = client.get("companies", "1")

    assert record == {"_id": "1", "name": "Acme"}
    assert server.sleeps == [0.5, 1.0]


def test_500_on_create_is_not_resent() -> None:
    server = FakePlanhat(reply(500, text="oops"), reply(200, {"_id": "dup"}))

    with server.client(BACKOFF) as client, pytest.raises(RetryableError):
        client.create("companies", {"name": "Acme"})

    assert server.methods == ["POST"]
    assert server.sleeps == []


def test_connect_error_on_create_is_retried_as_it_never_reached_planhat() -> None:
    server = FakePlanhat(fail(httpx.ConnectError), reply(200, {"_id": "new"}))

    with server.client(BACKOFF) as client:
        record = client.create("companies", {"name": "Acme"})

    assert record == {"_id": "new"}
    assert server.methods == ["POST", "POST"]
    assert json.loads(server.requests[1].content) == {"name": "Acme"}


def test_read_timeout_on_get_is_retried() -> None:
    server = FakePlanhat(fail(httpx.ReadTimeout), reply(200, {"_id": "1"}))

    with server.client(BACKOFF) as client:
        assert client.get("companies", "1") == {"_id": "1"}

    assert server.sleeps == [0.5]


# --- bulk upsert ------------------------------------------------------------------------


def test_bulk_chunk_of_keyed_records_is_resent_after_a_500() -> None:
    server = FakePlanhat(reply(500), bulk_echo)
    records = [{"sourceId": "a", "name": "A"}, {"sourceId": "b", "name": "B"}]

    with server.client(BACKOFF) as client:
        results = client.bulk_upsert("companies", records)

    assert server.methods == ["PUT", "PUT"]
    assert [(r.index, r.outcome, r.id) for r in results] == [
        (0, Outcome.CREATED, "id-a"),
        (1, Outcome.CREATED, "id-b"),
    ]


def test_bulk_chunk_with_a_keyless_record_is_not_resent() -> None:
    server = FakePlanhat(reply(500), bulk_echo)

    with server.client(BACKOFF) as client, pytest.raises(RetryableError):
        client.bulk_upsert("companies", [{"sourceId": "a"}, {"name": "no key"}])

    assert server.methods == ["PUT"]


def test_bulk_400_rejects_every_record_of_that_chunk_with_the_body_text() -> None:
    # given a first chunk Planhat accepts and a second it refuses as a whole
    server = FakePlanhat(bulk_echo, reply(400, text="sourceId b appears twice"))
    records = [{"sourceId": "a"}, {"sourceId": "b"}, {"sourceId": "c"}]

    with server.client(BACKOFF) as client:
        results = client.bulk_upsert("companies", records, chunk_size=1)

    assert [(r.index, r.outcome, r.message) for r in results] == [
        (0, Outcome.CREATED, None),
        (1, Outcome.REJECTED, "sourceId b appears twice"),
        (2, Outcome.REJECTED, "sourceId b appears twice"),
    ]
    assert len(server.requests) == 3


def test_bulk_results_come_back_one_per_record_across_chunks() -> None:
    server = FakePlanhat(bulk_echo)
    records = [{"sourceId": f"s{i}", "name": f"Company {i}"} for i in range(5)]

    with server.client() as client:
        results = client.bulk_upsert("companies", records, chunk_size=2)

    assert [(r.index, r.outcome, r.id) for r in results] == [
        (i, Outcome.CREATED, f"id-s{i}") for i in range(5)
    ]
    assert server.methods == ["PUT"] * 3
    assert [len(json.loads(r.content)) for r in server.requests] == [2, 2, 1]
    assert {r.url.path for r in server.requests} == {"/companies"}


# --- error mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error", "says"),
    [
        (reply(401, text="Unauthorized"), FatalError, "PLANHAT_BASE_URL"),
        (reply(403, text="Forbidden"), FatalError, "denied permission"),
        (reply(404, text="Not found"), NotFoundError, "Not found"),
        (reply(301, text="", Location="https://elsewhere.example/x"), FatalError, "redirected"),
    ],
    ids=["401-region-hint", "403", "404", "301-not-followed"],
)
def test_error_status_maps_to_its_error_after_one_request(
    answer: Answer, error: type[Exception], says: str
) -> None:
    server = FakePlanhat(answer, reply(200, {"_id": "1"}))

    with server.client(BACKOFF) as client, pytest.raises(error, match=says):
        client.get("companies", "1")

    assert len(server.requests) == 1


def test_400_with_a_json_body_is_rejected_with_its_message() -> None:
    server = FakePlanhat(reply(400, {"message": "name is required"}))

    with server.client(BACKOFF) as client, pytest.raises(RejectedError) as caught:
        client.create("companies", {})

    assert caught.value.message == "name is required"
    assert caught.value.status_code == 400
    assert len(server.requests) == 1


def test_400_with_a_text_body_is_rejected_with_the_text() -> None:
    server = FakePlanhat(reply(400, text="Bad payload"))

    with server.client(BACKOFF) as client, pytest.raises(RejectedError) as caught:
        client.update("companies", "1", {"name": ""})

    assert caught.value.message == "Bad payload"


# --- models and paths -------------------------------------------------------------------


def test_unknown_model_fails_before_any_request_and_suggests_a_name() -> None:
    server = FakePlanhat(reply(200, []))

    with (
        server.client() as client,
        pytest.raises(UnknownModelError, match="Did you mean 'licenses'"),
    ):
        client.list_page("licences")

    assert server.requests == []


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.get("tickets", "x"),
        lambda client: client.bulk_upsert("customfields", [{"name": "tier"}]),
    ],
    ids=["get-tickets", "bulk-customfields"],
)
def test_unsupported_operation_fails_before_any_request(
    call: Callable[[PlanhatClient], object],
) -> None:
    server = FakePlanhat(reply(200, {}))

    with server.client() as client, pytest.raises(UnsupportedOperationError):
        call(client)

    assert server.requests == []


@pytest.mark.parametrize(
    ("record_id", "raw_path"),
    [
        ("extid-a/b", b"/companies/extid-a%2Fb"),
        ("srcid-a b", b"/companies/srcid-a%20b"),
    ],
)
def test_ids_are_percent_encoded_in_the_path(record_id: str, raw_path: bytes) -> None:
    server = FakePlanhat(reply(200, {"_id": "1"}))

    with server.client() as client:
        client.get("companies", record_id)

    assert server.requests[0].url.raw_path == raw_path
