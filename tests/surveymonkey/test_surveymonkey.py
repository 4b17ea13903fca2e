"""The SurveyMonkey source: signatures, the completion of thin callbacks from SurveyMonkey's
API (against a fake of it), and the mapping of the stored document to Planhat NPS records,
on tests/fixtures/surveymonkey (hand-typed: one survey, one response, completed then edited)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.change import MappingError, RecordRejected
from connectors.surveymonkey import api
from connectors.surveymonkey.api import Surveys, detail
from connectors.surveymonkey.mapping import changes
from connectors.surveymonkey.verify import sign, verify
from connectors.webhooks import SignatureError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "surveymonkey"
SECRET = "client-id&client-secret"
NOW = 1_700_000_000.0
SURVEY = "508931234"
RESPONSE = "118221003817"
KEY = f"surveymonkey-{RESPONSE}"
NPS_QUESTION = "790112233"
COMMENT_QUESTION = "790112234"
VERSION = 1795169070000000  # 2026-11-20T10:04:30+00:00 in microseconds since the epoch
UPDATED_VERSION = 1795365668000000  # 2026-11-22T16:41:08+00:00

Json = dict[str, Any]
Mapped = tuple[str, str, str, dict[str, Any], int]

COMPLETED_FIELDS = {
    "email": "grace@hopper.example",
    "score": 8,
    "comment": "Great product, slow support.",
    "dateAnswered": "2026-11-20T10:04:30+00:00",
    "source": "surveymonkey",
}


def load(name: str) -> Json:
    loaded: Json = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def raw(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def document(event: str = "response_completed", response: str = "response_details") -> Json:
    """The stored document as connectors/surveymonkey/api.py's ``detail`` builds it."""
    return {"event": load(event), "response": load(response), "survey": load("survey_details")}


def encoded(value: Json) -> bytes:
    return json.dumps(value).encode()


def mapped(doc: Json, options: dict[str, str] | None = None) -> list[Mapped]:
    return [
        (c.model, c.key_field, c.key, dict(c.fields), c.version)
        for c in changes(encoded(doc), "e", options)
    ]


def nps(fields: dict[str, Any], version: int = VERSION) -> Mapped:
    return ("nps", "sourceId", KEY, fields, version)


def question(doc: Json, question_id: str) -> Json:
    found: Json = next(
        q for page in doc["response"]["pages"] for q in page["questions"] if q["id"] == question_id
    )
    return found


# --- signatures -------------------------------------------------------------------------


def test_a_correctly_signed_callback_gives_its_event_id_as_a_string() -> None:
    body = raw("response_completed")

    assert verify({"Sm-Signature": sign(SECRET, body)}, body, SECRET, NOW) == "10683945021"


def test_a_numeric_event_id_is_given_as_a_string() -> None:
    body = b'{"event_id": 10683945021}'

    assert verify({"Sm-Signature": sign(SECRET, body)}, body, SECRET, NOW) == "10683945021"


def test_sign_is_hmac_sha1_then_base64() -> None:
    assert sign("secret", b"{}") == "XWFgXD/uqXmSEN3LcTB9S6JkIl8="


@pytest.mark.parametrize("name", ["Sm-Apikey", "sm-apikey"])
def test_an_sm_apikey_equal_to_the_client_id_is_accepted(name: str) -> None:
    body = raw("response_completed")
    headers = {"Sm-Signature": sign(SECRET, body), name: "client-id"}

    assert verify(headers, body, SECRET, NOW) == "10683945021"


def test_another_clients_sm_apikey_is_refused_even_when_signed() -> None:
    body = raw("response_completed")
    headers = {"Sm-Signature": sign(SECRET, body), "Sm-Apikey": "other-client-id"}

    with pytest.raises(SignatureError, match="Sm-Apikey is not this connection's"):
        verify(headers, body, SECRET, NOW)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Sm-Signature": sign("client-id&other-secret", raw("response_completed"))},
         "Sm-Signature does not match"),
        ({"Sm-Signature": sign("client-id", raw("response_completed"))},
         "Sm-Signature does not match"),
        ({}, "missing Sm-Signature header"),
        ({"Sm-Signature": ""}, "missing Sm-Signature header"),
        ({"Sm-Apikey": "client-id"}, "missing Sm-Signature header"),
    ],
)  # fmt: skip
def test_a_wrong_or_missing_signature_is_refused(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify(headers, raw("response_completed"), SECRET, NOW)


def test_a_body_changed_after_signing_is_refused() -> None:
    body = raw("response_completed")
    header = sign(SECRET, body)

    with pytest.raises(SignatureError, match="Sm-Signature does not match"):
        verify({"Sm-Signature": header}, body.replace(b"118221003817", b"118221003818"),
               SECRET, NOW)  # fmt: skip


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not a SurveyMonkey event"),
        (b'{"event_type": "response_completed"}', "not a SurveyMonkey event"),
        (b'{"event_id": ""}', "must be a string or number"),
        (b'{"event_id": true}', "must be a string or number"),
        (b'{"event_id": null}', "must be a string or number"),
    ],
)
def test_a_correctly_signed_body_without_an_event_id_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify({"Sm-Signature": sign(SECRET, body)}, body, SECRET, NOW)


# --- mapping: the stored document -------------------------------------------------------


def test_a_completed_response_becomes_one_nps_record_keyed_by_its_response_id() -> None:
    assert mapped(document()) == [nps(COMPLETED_FIELDS)]


def test_an_edited_response_updates_the_same_record_at_a_newer_version() -> None:
    [first] = changes(encoded(document()), "10683945021", {})
    [edited] = changes(
        encoded(document("response_updated", "response_details_updated")), "10684511876", {}
    )

    assert (edited.model, edited.key_field, edited.key, dict(edited.fields), edited.version) == (
        "nps", "sourceId", KEY,
        {"email": "grace@hopper.example", "score": 10,
         "comment": "Great product, and support got back to me within the hour.",
         "dateAnswered": "2026-11-22T16:41:08+00:00", "source": "surveymonkey"},
        UPDATED_VERSION,
    )  # fmt: skip
    assert edited.record_key == first.record_key == f"sourceId={KEY}"
    assert edited.version > first.version
    assert (first.event_id, edited.event_id) == ("10683945021", "10684511876")


@pytest.mark.parametrize(
    "options",
    [
        {"score_question": NPS_QUESTION},
        {"score_question": f"{SURVEY}:{NPS_QUESTION}"},
        {"score_question": f"999:{COMMENT_QUESTION},{SURVEY}:{NPS_QUESTION}"},
        {"comment_question": COMMENT_QUESTION},
        {"comment_question": f"{SURVEY}:{COMMENT_QUESTION}"},
        {"score_question": f"999:{COMMENT_QUESTION}", "comment_question": f"999:{NPS_QUESTION}"},
    ],
)
def test_questions_named_by_id_or_per_survey_map_as_the_defaults_do(
    options: dict[str, str],
) -> None:
    assert mapped(document(), options) == [nps(COMPLETED_FIELDS)]


def test_a_comment_question_without_text_answers_leaves_no_comment() -> None:
    fields = {k: v for k, v in COMPLETED_FIELDS.items() if k != "comment"}

    assert mapped(document(), {"comment_question": f"{SURVEY}:{NPS_QUESTION}"}) == [nps(fields)]


def test_a_response_without_a_comment_has_no_comment_field() -> None:
    doc = document()
    question(doc, COMMENT_QUESTION)["answers"] = []
    fields = {k: v for k, v in COMPLETED_FIELDS.items() if k != "comment"}

    assert mapped(doc) == [nps(fields)]


def test_a_score_question_that_holds_text_is_rejected_as_not_a_number() -> None:
    with pytest.raises(RecordRejected, match="is not a whole number"):
        changes(encoded(document()), "e", {"score_question": COMMENT_QUESTION})


def test_a_survey_can_name_its_campaign_and_a_fallback_company() -> None:
    options = {"campaign": f"{SURVEY}:6543210fedcba98765432101", "fallback_company": "srcid-x"}

    assert mapped(document(), options) == [
        nps(COMPLETED_FIELDS | {"campaignId": "6543210fedcba98765432101",
                                "~fallbackCompany": "srcid-x"})
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "email"),
    [
        ({"email_address": ""}, "grace@hopper.example"),
        ({"email_address": "", "metadata": {}}, None),
        ({"email_address": "", "metadata": {}, "custom_variables": {"email": "G@Hopper.Example"}},
         "g@hopper.example"),
    ],
)  # fmt: skip
def test_the_email_falls_back_to_the_contact_then_a_custom_variable(
    change: Json, email: str | None
) -> None:
    doc = document()
    doc["response"] |= change

    if email is None:
        with pytest.raises(RecordRejected, match="no e-mail"):
            changes(encoded(doc), "e", {})
    else:
        assert mapped(doc) == [nps(COMPLETED_FIELDS | {"email": email})]


def test_a_response_without_any_email_is_rejected() -> None:
    doc = document()
    doc["response"] |= {"email_address": "", "metadata": {}, "custom_variables": {}}

    with pytest.raises(RecordRejected, match=f"surveymonkey response {KEY} has no e-mail"):
        changes(encoded(doc), "e", {})


def test_a_choice_the_survey_does_not_have_is_rejected_as_no_score() -> None:
    doc = document()
    question(doc, NPS_QUESTION)["answers"][0]["choice_id"] = "5201837799"

    with pytest.raises(RecordRejected, match="no NPS score"):
        changes(encoded(doc), "e", {})


def test_a_response_that_skipped_the_score_question_is_rejected() -> None:
    doc = document()
    question(doc, NPS_QUESTION)["answers"] = []

    with pytest.raises(RecordRejected, match="no NPS score"):
        changes(encoded(doc), "e", {})


def test_a_survey_without_a_0_to_10_question_gives_no_score() -> None:
    doc = document()
    choices = doc["survey"]["pages"][0]["questions"][0]["answers"]["choices"]
    doc["survey"]["pages"][0]["questions"][0]["answers"]["choices"] = choices[1:]

    with pytest.raises(RecordRejected, match="no NPS score"):
        changes(encoded(doc), "e", {})


def test_a_partial_response_maps_to_nothing_yet() -> None:
    doc = document()
    doc["response"]["response_status"] = "partial"

    assert mapped(doc) == []


# --- mapping: callbacks and other events ------------------------------------------------


@pytest.mark.parametrize("name", ["response_completed", "response_updated"])
def test_the_bare_callback_maps_to_nothing_before_the_response_is_fetched(name: str) -> None:
    assert changes(raw(name), "e", {}) == []


def test_an_event_that_names_no_response_maps_to_nothing() -> None:
    event = {"event_id": "10690000001", "event_type": "collector_created",
             "object_type": "collector", "object_id": "431876502",
             "resources": {"survey_id": SURVEY}}  # fmt: skip

    assert changes(encoded({"event": event}), "e", {}) == []
    assert changes(encoded(event), "e", {}) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"object_id": "118221003817"}', "no event_type"),
        (b"not json", "not a SurveyMonkey response we can read"),
        (encoded({"event": load("response_completed")}), "not a SurveyMonkey response we can"),
        (encoded(document() | {"response": {"response_status": "completed"}}),
         "not a SurveyMonkey response we can read"),
    ],
)  # fmt: skip
def test_an_unreadable_body_is_a_mapping_error_not_a_rejection(body: bytes, reason: str) -> None:
    with pytest.raises(MappingError, match=reason) as error:
        changes(body, "e", {})

    assert not isinstance(error.value, RecordRejected)


# --- completing a callback from SurveyMonkey's API --------------------------------------


class FakeSurveyMonkey:
    """SurveyMonkey's two GETs, answered from the fixtures; every request is counted."""

    def __init__(self, responses: dict[str, Json]) -> None:
        self.responses = responses
        self.calls: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls[path] += 1
        if path == f"/v3/surveys/{SURVEY}/details":
            return httpx.Response(200, json=load("survey_details"))
        for response_id, response in self.responses.items():
            if path == f"/v3/surveys/{SURVEY}/responses/{response_id}/details":
                return httpx.Response(200, json=response)
        return httpx.Response(404, json={"error": {"message": "not found"}})


@pytest.fixture
def surveys(monkeypatch: pytest.MonkeyPatch) -> Surveys:
    """A fresh survey cache: ``detail`` reads the module's ``SURVEYS``, shared by all tests."""
    fresh = Surveys()
    monkeypatch.setattr(api, "SURVEYS", fresh)
    return fresh


def fake_client(fake: FakeSurveyMonkey, name: str) -> httpx.Client:
    return httpx.Client(base_url=f"https://{name}.sm.test", transport=httpx.MockTransport(fake))


def test_detail_builds_the_document_the_mapping_reads(surveys: Surveys) -> None:
    fake = FakeSurveyMonkey({RESPONSE: load("response_details")})

    with fake_client(fake, "document") as client:
        stored = detail(client, raw("response_completed"))

    assert json.loads(stored) == document()
    assert [(c.key, dict(c.fields), c.version) for c in changes(stored, "10683945021", {})] == [
        (KEY, COMPLETED_FIELDS, VERSION)
    ]
    assert fake.calls == {
        f"/v3/surveys/{SURVEY}/responses/{RESPONSE}/details": 1,
        f"/v3/surveys/{SURVEY}/details": 1,
    }


def test_survey_details_are_fetched_once_for_two_responses_of_one_survey(
    surveys: Surveys,
) -> None:
    other = copy.deepcopy(load("response_details")) | {"id": "118221009999"}
    fake = FakeSurveyMonkey({RESPONSE: load("response_details_updated"), "118221009999": other})
    second = load("response_completed") | {"event_id": "10690000002", "object_id": "118221009999"}

    with fake_client(fake, "cache") as client:
        first_stored = detail(client, raw("response_updated"))
        second_stored = detail(client, encoded(second))

    assert json.loads(first_stored)["response"]["date_modified"] == "2026-11-22T16:41:08+00:00"
    assert json.loads(second_stored)["response"]["id"] == "118221009999"
    assert json.loads(second_stored)["survey"] == load("survey_details")
    assert fake.calls == {
        f"/v3/surveys/{SURVEY}/responses/{RESPONSE}/details": 1,
        f"/v3/surveys/{SURVEY}/responses/118221009999/details": 1,
        f"/v3/surveys/{SURVEY}/details": 1,
    }


def test_survey_details_are_cached_per_base_url(surveys: Surveys) -> None:
    fake = FakeSurveyMonkey({RESPONSE: load("response_details")})

    with fake_client(fake, "one") as one, fake_client(fake, "two") as two:
        detail(one, raw("response_completed"))
        detail(two, raw("response_completed"))
        detail(one, raw("response_completed"))

    assert fake.calls[f"/v3/surveys/{SURVEY}/details"] == 2
    assert fake.calls[f"/v3/surveys/{SURVEY}/responses/{RESPONSE}/details"] == 3


def test_the_survey_cache_keeps_only_the_most_recently_used_surveys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api, "SURVEYS", Surveys(maxsize=2))
    fake = FakeSurveyMonkey({RESPONSE: load("response_details")})

    # the same survey seen through three accounts: three entries for a cache of two
    for name in ("one", "two", "three", "two", "one"):
        with fake_client(fake, name) as client:
            detail(client, raw("response_completed"))

    # "two" was still cached; "one" had been pushed out by "three" and is fetched again
    assert fake.calls[f"/v3/surveys/{SURVEY}/details"] == 4


def test_an_event_that_names_no_response_is_stored_without_fetching(surveys: Surveys) -> None:
    fake = FakeSurveyMonkey({})
    event = {"event_id": "10690000001", "event_type": "collector_created",
             "object_id": "431876502", "resources": {"survey_id": SURVEY}}  # fmt: skip

    with fake_client(fake, "no-response") as client:
        stored = detail(client, encoded(event))

    assert json.loads(stored) == {"event": event}
    assert changes(stored, "e", {}) == []
    assert fake.calls == {}


def test_a_response_surveymonkey_does_not_know_raises_an_http_error(surveys: Surveys) -> None:
    fake = FakeSurveyMonkey({})

    with (
        fake_client(fake, "missing") as client,
        pytest.raises(httpx.HTTPStatusError, match="404"),
    ):
        detail(client, raw("response_completed"))

    assert fake.calls == {f"/v3/surveys/{SURVEY}/responses/{RESPONSE}/details": 1}
