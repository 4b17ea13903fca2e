"""Custom field rules through the pipeline: stored events → rules → diff → flush → the
Planhat sandbox's custom fields, on SQLite and PostgreSQL (tests/engine/custom_fields_flow.py)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.connections import change_options
from state.db import session_scope
from state.tables import DeadLetter, InboxEvent, OutboxItem
from tests.conftest import FAST_RETRY, UNLIMITED, sandbox_stats
from tests.engine.custom_fields_flow import (
    EASE,
    ESCALATION,
    PLAN,
    SEATS,
    SEGMENT,
    SINCE,
    TAGS,
    connect,
    custom_fields,
    custom_of,
    customer_event,
    flush,
    receive,
    rules,
    typeform_event,
    writes,
    zendesk_detail,
)
from worker.pipeline.dlq import replay


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url, retry=FAST_RETRY) as client:
        yield client


def test_rules_from_three_sources_land_in_planhats_custom_fields_with_their_types(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    # given: the tenant's fields, and a connection whose rules fill them
    custom_fields(planhat, ("company", "Segment", "text"), ("company", "Seats", "number"),
                  ("company", "Customer since", "date"), ("nps", "Plan", "text"),
                  ("nps", "Ease", "number"), ("ticket", "Escalation", "text"),
                  ("ticket", "Tags", "list"))  # fmt: skip
    acme = planhat.create("companies", {"name": "Acme", "domains": ["acme.example"]})
    planhat.create("endusers", {"email": "ada@acme.example", "companyId": acme["_id"]})
    connect(engine, "acme", sandbox, rules(SEGMENT, SEATS, SINCE, PLAN, EASE, ESCALATION, TAGS))

    # when
    receive(engine, "acme", "stripe",
            customer_event("cus_1", 1648320107, segment="Enterprise", seats="42"))  # fmt: skip
    receive(engine, "acme", "typeform", typeform_event())
    receive(engine, "acme", "zendesk", b"{}", detail=zendesk_detail("tier 2"))
    flush(engine, planhat, "acme")

    # then
    with session_scope(engine) as session:
        assert list(session.exec(select(DeadLetter))) == []
    assert custom_of(planhat, "companies")["cus_1"] == {
        "Segment": "Enterprise", "Seats": 42, "Customer since": "2022-03-26T18:41:47.000Z"
    }  # fmt: skip
    [nps] = planhat.list("nps")
    assert nps["custom"] == {"Plan": "Pro", "Ease": 4}
    [ticket] = planhat.list("tickets")
    assert ticket["custom"] == {"Escalation": "tier 2", "Tags": ["vip", "sso"]}


def test_an_unchanged_mapped_value_costs_no_call_and_a_changed_one_one_write(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    custom_fields(planhat, ("company", "Segment", "text"))
    connect(engine, "acme", sandbox, rules(SEGMENT))
    receive(engine, "acme", "stripe", customer_event("cus_1", 100, segment="SMB"))
    flush(engine, planhat, "acme")
    calls = sandbox_stats(sandbox)["requests"]

    # the same customer again, nothing changed: no outbox row, no call
    receive(engine, "acme", "stripe", customer_event("cus_1", 200, segment="SMB"))
    with session_scope(engine) as session:
        assert list(session.exec(select(OutboxItem))) == []
    flush(engine, planhat, "acme")
    assert sandbox_stats(sandbox)["requests"] == calls

    # only the mapped value changed: one write of one record
    receive(engine, "acme", "stripe", customer_event("cus_1", 300, segment="Enterprise"))
    flush(engine, planhat, "acme")
    stats = sandbox_stats(sandbox)
    assert stats["requests"] == calls + 1  # type: ignore[operator]
    assert writes(sandbox, "companies") == 2
    assert custom_of(planhat, "companies")["cus_1"] == {"Segment": "Enterprise"}


def test_a_value_planhat_refuses_becomes_a_dead_letter_naming_the_field(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    # given: a number rule, and a CSM who since made the Planhat field a date
    custom_fields(planhat, ("company", "Seats", "number"))
    connect(engine, "acme", sandbox, rules(SEATS))
    [field] = planhat.list("customfields")
    planhat.update("customfields", field["_id"], {"type": "date"})

    receive(engine, "acme", "stripe", customer_event("cus_1", 100, seats="42"))
    flush(engine, planhat, "acme")

    with session_scope(engine) as session:
        [letter] = session.exec(select(DeadLetter))
    assert "custom field 'Seats'" in letter.reason
    assert "42" not in letter.reason  # names the field, never its value


def test_a_value_not_of_its_rules_type_is_a_dead_letter_naming_the_field(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    custom_fields(planhat, ("company", "Seats", "number"))
    connect(engine, "acme", sandbox, rules(SEATS))

    receive(engine, "acme", "stripe", customer_event("cus_1", 100, seats="many"))

    with session_scope(engine) as session:
        [letter] = session.exec(select(DeadLetter))
        [event] = session.exec(select(InboxEvent))
    assert "companies.custom.Seats (number)" in letter.reason
    assert "many" not in letter.reason
    assert event.status == "failed"  # buried: a dead letter, replayable
    assert sandbox_stats(sandbox)["record_writes"] == {}


def test_adding_a_rule_and_replaying_fills_every_existing_record_exactly_once(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    # given: three customers synced (two events each) before the rule existed
    start = datetime.now(UTC) - timedelta(minutes=1)
    custom_fields(planhat, ("company", "Segment", "text"))
    connect(engine, "acme", sandbox, {})
    for number, customer in enumerate(("cus_1", "cus_2", "cus_3")):
        receive(engine, "acme", "stripe", customer_event(customer, 100 + number, segment="A"))
        receive(engine, "acme", "stripe", customer_event(customer, 200 + number, segment="B"))
    flush(engine, planhat, "acme")
    assert writes(sandbox, "companies") == 3
    assert all(custom == {} for custom in custom_of(planhat, "companies").values())

    # when: the rule is added and the stored events replayed
    change_options(engine, "acme", lambda options: options | rules(SEGMENT))
    replay(engine, since=start)
    flush(engine, planhat, "acme")

    # then: each record written once more, with its newest value
    assert writes(sandbox, "companies") == 6
    assert custom_of(planhat, "companies") == {c: {"Segment": "B"} for c in ("cus_1", "cus_2",
                                                                            "cus_3")}  # fmt: skip
    # and replaying again costs nothing
    calls = sandbox_stats(sandbox)["requests"]
    replay(engine, since=start)
    flush(engine, planhat, "acme")
    assert sandbox_stats(sandbox)["requests"] == calls


def test_two_connections_with_different_rules_never_see_each_others_fields(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, start_sandbox: Any
) -> None:
    other = start_sandbox(UNLIMITED)
    custom_fields(planhat, ("company", "Segment", "text"))
    connect(engine, "acme", sandbox, rules(SEGMENT))
    connect(engine, "globex", other, rules(SEATS))
    body = customer_event("cus_1", 100, segment="Enterprise", seats="42")

    receive(engine, "acme", "stripe", body)
    receive(engine, "globex", "stripe", copy.copy(body))
    with PlanhatClient("t", base_url=other.url, retry=FAST_RETRY) as globex:
        custom_fields(globex, ("company", "Seats", "number"))
        flush(engine, planhat, "acme")
        flush(engine, globex, "globex")
        assert custom_of(globex, "companies")["cus_1"] == {"Seats": 42}
    assert custom_of(planhat, "companies")["cus_1"] == {"Segment": "Enterprise"}
