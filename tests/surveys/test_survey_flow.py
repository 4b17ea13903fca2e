"""Survey responses through the receiver and the engine into the Planhat sandbox: each NPS
lands on its respondent's enduser and company, new respondents become endusers of the
company their e-mail's domain names, and what cannot be linked or is not a valid score
becomes a dead letter that says why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.surveymonkey.verify import sign as sm_sign
from tests.engine.services import fresh_postgres_database
from tests.surveys.harness import FIXTURES, FORM, SM_SECRET, Surveys, typeform_event
from worker.pipeline import dlq
from worker.runtime.jobs import run_poll


@pytest.fixture(params=["sqlite", "postgresql"])
def surveys(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Surveys]:
    """The embedded engine on SQLite, and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        system = Surveys(tmp_path)
        yield system
        system.close()
        return
    with fresh_postgres_database("phs_surveys") as url:
        system = Surveys(tmp_path, database_url=url)
        yield system
        system.close()


def test_a_response_lands_on_its_respondents_enduser_and_company(surveys: Surveys) -> None:
    acme = surveys.company("Acme", "acme.example")
    ada = surveys.enduser("ada@acme.example", acme)

    answer = surveys.post_typeform(typeform_event("tok-1", "Ada@Acme.example", 9))
    surveys.drain()

    assert answer.status_code == 202
    [nps] = surveys.nps()
    assert (nps["sourceId"], nps["email"], nps["score"]) == (
        "typeform-tok-1",
        "ada@acme.example",
        9,
    )
    assert (nps["cId"], nps["euId"]) == (acme, ada)
    assert len(list(surveys.client.list("endusers"))) == 1  # no second Ada


def test_a_new_respondent_becomes_an_enduser_of_the_company_with_their_domain(
    surveys: Surveys,
) -> None:
    surveys.company("Other", "other.example")
    acme = surveys.company("Acme", "acme.example", "acme.io")

    surveys.post_typeform(typeform_event("tok-1", "grace@acme.io", 10))
    surveys.drain()

    [enduser] = surveys.client.list("endusers")
    [nps] = surveys.nps()
    assert (enduser["email"], enduser["companyId"]) == ("grace@acme.io", acme)
    assert (nps["cId"], nps["euId"], nps["score"]) == (acme, enduser["_id"], 10)


def test_a_duplicate_delivery_yields_one_nps_record(surveys: Surveys) -> None:
    surveys.company("Acme", "acme.example")
    event = typeform_event("tok-1", "ada@acme.example", 7)

    first, again = surveys.post_typeform(event), surveys.post_typeform(event)
    surveys.drain()

    assert (first.status_code, again.status_code) == (202, 200)
    assert len(surveys.nps()) == 1


@pytest.mark.parametrize(
    ("email", "score", "reason"),
    [
        (
            "ada@acme.example",
            11,
            "typeform response typeform-tok-bad: the score 11 is outside 0-10",
        ),
        (
            "ada@acme.example",
            None,
            "typeform response typeform-tok-bad has no NPS score: no 0-10 answer was found",
        ),
        (
            None,
            8,
            "typeform response typeform-tok-bad has no e-mail, "
            "so the score cannot go to an enduser",
        ),
    ],
)
def test_a_response_that_cannot_be_a_score_is_a_dead_letter_saying_why(
    surveys: Surveys, email: str | None, score: int | None, reason: str
) -> None:
    surveys.company("Acme", "acme.example")
    event = typeform_event("tok-bad", email, score)
    if score is None:  # no nps or opinion_scale answer at all
        answers = event["form_response"]["answers"]
        event["form_response"]["answers"] = [
            a for a in answers if a["field"]["type"] not in ("nps", "opinion_scale")
        ]

    answer = surveys.post_typeform(event)
    surveys.drain()

    assert answer.status_code == 202  # well-formed: kept, so nothing is lost
    [letter] = surveys.letters()
    assert letter.reason == reason
    assert surveys.nps() == []


def test_a_respondent_no_company_can_take_is_a_dead_letter_until_the_domain_is_added(
    surveys: Surveys,
) -> None:
    acme = surveys.company("Acme", "acme.example")

    surveys.post_typeform(typeform_event("tok-1", "kim@unknown.example", 6))
    surveys.drain()

    [letter] = surveys.letters()
    assert letter.reason == (
        "no Planhat enduser has the e-mail kim@unknown.example and no company has the "
        "domain unknown.example; add the domain to its company in Planhat, or set "
        "typeform.fallback_company, then retry this dead letter"
    )
    assert surveys.nps() == []
    assert list(surveys.client.list("endusers")) == []
    # when the domain is added to the company in Planhat, and the dead letter retried
    surveys.client.update("companies", acme, {"domains": ["acme.example", "unknown.example"]})
    surveys.runtime.prepare_memo.clear()  # the prepare hook reads Planhat's directory afresh
    dlq.retry(surveys.runtime.engine, None)
    surveys.dispatcher.flush("default", 0.0)
    surveys.drain()
    [nps] = surveys.nps()
    assert (nps["cId"], nps["score"]) == (acme, 6)
    assert surveys.letters() == []


def test_a_fallback_company_takes_respondents_whose_domain_no_company_has(
    tmp_path: Path,
) -> None:
    system = Surveys(tmp_path, {"typeform.fallback_company": "extid-unassigned"})
    try:
        fallback = str(
            system.client.create("companies", {"name": "Unassigned", "externalId": "unassigned"})[
                "_id"
            ]
        )
        system.post_typeform(typeform_event("tok-1", "kim@gmail.example", 3))
        system.drain()
        [nps] = system.nps()
        [enduser] = system.client.list("endusers")
    finally:
        system.close()

    assert (enduser["email"], enduser["companyId"]) == ("kim@gmail.example", fallback)
    assert (nps["cId"], nps["euId"]) == (fallback, enduser["_id"])


def test_a_surveymonkey_response_updated_after_submission_updates_its_record(
    surveys: Surveys,
) -> None:
    hopper = surveys.company("Hopper Labs", "hopper.example")

    first = surveys.post_surveymonkey("response_completed")
    surveys.drain()
    [submitted] = surveys.nps()
    edited = (FIXTURES / "surveymonkey" / "response_details_updated.json").read_text()
    surveys.fake.sm_response = json.loads(edited)
    second = surveys.post_surveymonkey("response_updated")
    surveys.drain()

    [updated] = surveys.nps()
    assert (first.status_code, second.status_code) == (202, 202)
    assert (submitted["score"], updated["score"]) == (8, 10)
    assert submitted["_id"] == updated["_id"]
    assert (updated["sourceId"], updated["cId"]) == ("surveymonkey-118221003817", hopper)
    assert updated["email"] == "grace@hopper.example"


def test_a_surveymonkey_event_with_a_bad_signature_is_refused_and_not_stored(
    surveys: Surveys,
) -> None:
    answer = surveys.post_surveymonkey("response_completed", secret="sm-client-id&wrong")

    assert answer.status_code == 401
    assert surveys.events() == []
    assert surveys.fake.calls == []  # nothing fetched either


def test_a_typeform_event_with_a_bad_signature_is_refused_and_not_stored(
    surveys: Surveys,
) -> None:
    answer = surveys.post_typeform(typeform_event("tok-1", "ada@acme.example", 9), "wrong")

    assert answer.status_code == 401
    assert surveys.events() == []


def test_responses_no_webhook_delivered_arrive_by_polling_once(surveys: Surveys) -> None:
    companies = {
        domain: surveys.company(domain, domain)
        for domain in ("acme.example", "globex.example", "initech.example")
    }
    page = json.loads((FIXTURES / "typeform" / "responses_page.json").read_text())
    surveys.fake.typeform_items = page["items"]
    delivered = page["items"][0]  # this one also came by webhook
    event = {"event_id": "LtWXD3crgy", "event_type": "form_response",
             "form_response": {"form_id": FORM, **delivered}}  # fmt: skip
    surveys.post_typeform(event)
    surveys.drain()

    first = run_poll(surveys.runtime, surveys.apis)
    surveys.drain()
    again = run_poll(surveys.runtime, surveys.apis)
    surveys.drain()

    assert (first, again) == (len(page["items"]) - 1, 0)
    records = surveys.nps()
    assert sorted(r["sourceId"] for r in records) == sorted(
        f"typeform-{item['token']}" for item in page["items"]
    )
    assert {r["email"]: r["cId"] for r in records} == {
        "ada@acme.example": companies["acme.example"],
        "lin@globex.example": companies["globex.example"],
        "sam@initech.example": companies["initech.example"],
    }
    assert surveys.letters() == []


def test_a_surveymonkey_callback_naming_no_response_is_a_dead_letter_not_a_loop(
    surveys: Surveys,
) -> None:
    body = json.dumps({"event_id": "1", "event_type": "response_completed"}).encode()
    headers = {"content-type": "application/json", "sm-signature": sm_sign(SM_SECRET, body)}

    answer = surveys.http.post("/webhooks/default/surveymonkey", content=body, headers=headers)
    surveys.drain()

    assert answer.status_code == 202
    [letter] = surveys.letters()
    assert letter.reason.startswith(
        "could not complete the event: the callback names no survey and response"
    )
    assert surveys.fake.calls == []
