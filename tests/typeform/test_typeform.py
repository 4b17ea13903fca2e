"""The Typeform source: signatures (the response token is the event id) and the mapping of
form responses to Planhat NPS records, on tests/fixtures/typeform (hand-typed, one NPS form)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.change import MappingError, RecordRejected
from connectors.options import OptionError
from connectors.sources import SOURCES, source_options
from connectors.surveys import SurveyResponse, nps_change
from connectors.typeform.mapping import changes
from connectors.typeform.verify import sign, verify
from connectors.webhooks import SignatureError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "typeform"
SECRET = "typeform-webhook-secret"
NOW = 1_700_000_000.0
TOKEN = "a3a12ec67a1365927098a606107fac15"
KEY = f"typeform-{TOKEN}"
SUBMITTED = "2026-11-20T09:15:42Z"
VERSION = 1795166142000000  # 2026-11-20T09:15:42Z in microseconds since the epoch

Mapped = tuple[str, str, str, dict[str, Any], int]


def example() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "webhook_example.json").read_text())
    return loaded


def encoded(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def mapped(event: dict[str, Any], options: dict[str, str] | None = None) -> list[Mapped]:
    return [
        (c.model, c.key_field, c.key, dict(c.fields), c.version)
        for c in changes(encoded(event), "e", options)
    ]


def answer(event: dict[str, Any], ref: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        a for a in event["form_response"]["answers"] if a["field"]["ref"] == ref
    )
    return found


def without_answer(event: dict[str, Any], ref: str) -> dict[str, Any]:
    response = event["form_response"]
    response["answers"] = [a for a in response["answers"] if a["field"]["ref"] != ref]
    return event


def with_score(score: object) -> dict[str, Any]:
    event = example()
    answer(event, "nps_score")["number"] = score
    return event


def nps(fields: dict[str, Any], key: str = KEY, version: int = VERSION) -> Mapped:
    return ("nps", "sourceId", key, fields, version)


EXAMPLE_FIELDS = {
    "email": "ada@acme.example",
    "score": 9,
    "comment": "Fast onboarding, great support.",
    "dateAnswered": "2026-11-20T09:15:42Z",
    "source": "typeform",
}


# --- signatures -------------------------------------------------------------------------


def test_a_correctly_signed_response_gives_its_token_not_its_event_id() -> None:
    body = encoded(example())

    event_id = verify({"Typeform-Signature": sign(SECRET, body)}, body, SECRET, NOW)

    assert event_id == TOKEN
    assert event_id != example()["event_id"]


def test_the_signature_header_is_found_in_lower_case_too() -> None:
    body = encoded(example())

    assert verify({"typeform-signature": sign(SECRET, body)}, body, SECRET, NOW) == TOKEN


def test_sign_is_sha256_then_base64() -> None:
    assert sign("secret", b"{}") == "sha256=dzJZAsrKgS3CWXM6rNBGtzgXNyx3e42VtAJkdHRRbhM="


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Typeform-Signature": sign("another-secret", encoded(example()))}, "does not match"),
        ({}, "missing Typeform-Signature header"),
        ({"Typeform-Signature": ""}, "missing Typeform-Signature header"),
        ({"Typeform-Signature": sign(SECRET, encoded(example()))[7:]}, "must be sha256="),
        ({"Typeform-Signature": "sha1=abc"}, "must be sha256="),
    ],
)
def test_a_wrong_or_missing_signature_is_refused(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify(headers, encoded(example()), SECRET, NOW)


def test_a_body_changed_after_signing_is_refused() -> None:
    body = encoded(example())
    header = sign(SECRET, body)

    with pytest.raises(SignatureError, match="does not match"):
        verify({"Typeform-Signature": header}, body.replace(b'"number": 9', b'"number": 10'),
               SECRET, NOW)  # fmt: skip


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not a Typeform form_response"),
        (b'{"event_id": "x", "event_type": "form_response"}', "not a Typeform form_response"),
        (b'{"form_response": {"form_id": "lT4Z3j"}}', "not a Typeform form_response"),
        (b"[]", "not a Typeform form_response"),
        (b'{"form_response": {"token": ""}}', "token must be a non-empty string"),
        (b'{"form_response": {"token": 42}}', "token must be a non-empty string"),
    ],
)
def test_a_correctly_signed_body_without_a_response_token_is_refused(
    body: bytes, reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify({"Typeform-Signature": sign(SECRET, body)}, body, SECRET, NOW)


# --- mapping: the documented example ----------------------------------------------------


def test_the_example_response_becomes_one_nps_record_keyed_by_its_token() -> None:
    assert mapped(example()) == [nps(EXAMPLE_FIELDS)]


def test_the_change_carries_the_event_id_it_was_mapped_under() -> None:
    [change] = changes(encoded(example()), "01JDB7K4QX9V2M8RZT3NC6HWPE", {})

    assert change.event_id == "01JDB7K4QX9V2M8RZT3NC6HWPE"


def test_the_options_as_source_options_fills_them_map_the_same() -> None:
    options = source_options(SOURCES["typeform"], {})

    assert mapped(example(), options) == [nps(EXAMPLE_FIELDS)]


def test_the_email_is_lowercased() -> None:
    event = example()
    event["form_response"]["hidden"]["email"] = "  Ada@ACME.Example "

    assert mapped(event) == [nps(EXAMPLE_FIELDS)]


# --- mapping: the score -----------------------------------------------------------------


def test_the_score_field_can_be_chosen_by_ref() -> None:
    assert mapped(example(), {"score_ref": "ease"}) == [nps(EXAMPLE_FIELDS | {"score": 4})]


def test_the_score_field_can_be_chosen_per_form() -> None:
    options = {"score_ref": "otherform:nps_score,lT4Z3j:ease"}

    assert mapped(example(), options) == [nps(EXAMPLE_FIELDS | {"score": 4})]


def test_another_form_than_the_ones_named_uses_the_default_score_field() -> None:
    event = example()
    event["form_response"]["form_id"] = "Zz9Yy8"

    assert mapped(event, {"score_ref": "otherform:nps_score,lT4Z3j:ease"}) == [nps(EXAMPLE_FIELDS)]


def test_an_opinion_scale_answer_is_the_score_when_there_is_no_nps_answer() -> None:
    event = without_answer(example(), "nps_score")

    assert mapped(event) == [nps(EXAMPLE_FIELDS | {"score": 4})]


@pytest.mark.parametrize("score", [0, 10])
def test_the_ends_of_the_scale_are_kept(score: int) -> None:
    assert mapped(with_score(score)) == [nps(EXAMPLE_FIELDS | {"score": score})]


def test_a_whole_float_score_is_kept_as_an_integer() -> None:
    assert mapped(with_score(7.0)) == [nps(EXAMPLE_FIELDS | {"score": 7})]


# --- mapping: the comment ---------------------------------------------------------------


def test_a_response_without_a_comment_has_no_comment_field() -> None:
    event = without_answer(example(), "why")
    fields = {k: v for k, v in EXAMPLE_FIELDS.items() if k != "comment"}

    assert mapped(event) == [nps(fields)]


def test_the_comment_field_can_be_chosen_by_ref() -> None:
    assert mapped(example(), {"comment_ref": "role"}) == [
        nps(EXAMPLE_FIELDS | {"comment": "Head of Customer Success"})
    ]


# --- mapping: the e-mail ----------------------------------------------------------------


def test_the_email_answer_can_be_chosen_by_ref() -> None:
    assert mapped(example(), {"email_ref": "work_email"}) == [
        nps(EXAMPLE_FIELDS | {"email": "ada.work@acme.example"})
    ]


def test_the_email_can_come_from_another_hidden_field() -> None:
    event = example()
    event["form_response"]["hidden"]["account_email"] = "billing@acme.example"

    assert mapped(event, {"email_ref": "hidden.account_email"}) == [
        nps(EXAMPLE_FIELDS | {"email": "billing@acme.example"})
    ]


def test_without_a_hidden_email_the_first_email_answer_is_used() -> None:
    event = example()
    del event["form_response"]["hidden"]["email"]

    assert mapped(event) == [nps(EXAMPLE_FIELDS | {"email": "ada.work@acme.example"})]


# --- mapping: campaign and fallback company ---------------------------------------------


def test_a_form_can_name_its_planhat_campaign() -> None:
    options = {"campaign": "lT4Z3j:6543210fedcba98765432101"}

    assert mapped(example(), options) == [
        nps(EXAMPLE_FIELDS | {"campaignId": "6543210fedcba98765432101"})
    ]


def test_a_campaign_for_another_form_is_not_set() -> None:
    assert mapped(example(), {"campaign": "Zz9Yy8:6543210fedcba98765432101"}) == [
        nps(EXAMPLE_FIELDS)
    ]


def test_the_fallback_company_rides_along_as_a_hint_field() -> None:
    assert mapped(example(), {"fallback_company": "extid-acme"}) == [
        nps(EXAMPLE_FIELDS | {"~fallbackCompany": "extid-acme"})
    ]


# --- mapping: rejections ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "reason"),
    [
        (11, "the score 11 is outside 0-10"),
        (-1, "the score -1 is outside 0-10"),
        (7.5, "the score 7.5 is not a whole number"),
        ("nine", "is not a whole number"),
        (True, "is not a whole number"),
    ],
)
def test_a_score_that_is_not_0_to_10_is_rejected(score: object, reason: str) -> None:
    with pytest.raises(RecordRejected, match=reason) as rejected:
        changes(encoded(with_score(score)), "e", {})

    assert KEY in str(rejected.value)


def test_a_response_without_a_score_answer_is_rejected() -> None:
    event = without_answer(without_answer(example(), "nps_score"), "ease")

    with pytest.raises(RecordRejected, match="no NPS score"):
        changes(encoded(event), "e", {})


def test_a_score_ref_that_names_no_answer_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="no NPS score"):
        changes(encoded(example()), "e", {"score_ref": "no_such_ref"})


def test_a_response_without_any_email_is_rejected() -> None:
    event = without_answer(example(), "work_email")
    del event["form_response"]["hidden"]["email"]

    with pytest.raises(RecordRejected, match="no e-mail"):
        changes(encoded(event), "e", {})


def test_an_email_ref_that_names_no_hidden_field_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="no e-mail"):
        changes(encoded(example()), "e", {"email_ref": "hidden.account_email"})


def test_an_email_that_is_not_an_address_is_rejected() -> None:
    event = example()
    event["form_response"]["hidden"]["email"] = "ada at acme"

    with pytest.raises(RecordRejected, match="'ada at acme' is not an e-mail address"):
        changes(encoded(event), "e", {})


# --- mapping: other events and unreadable bodies ----------------------------------------


def test_an_event_other_than_a_form_response_maps_to_nothing() -> None:
    event = example()
    event["event_type"] = "form_definition_updated"

    assert mapped(event) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"event_id": "x", "event_type": "form_response"}',
        b'{"event_id": "x", "event_type": "form_response", "form_response": {"form_id": "a"}}',
        b"not json",
        b"[]",
    ],
)
def test_an_unreadable_form_response_is_a_mapping_error_not_a_rejection(body: bytes) -> None:
    with pytest.raises(MappingError, match="not a Typeform form_response") as error:
        changes(body, "e", {})

    assert not isinstance(error.value, RecordRejected)


def test_a_response_without_a_token_is_a_mapping_error() -> None:
    event = example()
    del event["form_response"]["token"]

    with pytest.raises(MappingError) as error:
        changes(encoded(event), "e", {})

    assert not isinstance(error.value, RecordRejected)


# --- mapping: responses found by the poller ---------------------------------------------


def polled(item: dict[str, Any]) -> dict[str, Any]:
    """A Responses API item stored as the poller stores it (connectors/typeform/poll.py)."""
    return {"event_id": f"poll-{item['token']}", "event_type": "form_response",
            "form_response": {"form_id": "lT4Z3j", **item}}  # fmt: skip


def test_polled_responses_map_like_webhook_deliveries() -> None:
    page = json.loads((FIXTURES / "responses_page.json").read_text())

    assert [row for item in page["items"] for row in mapped(polled(item))] == [
        nps(EXAMPLE_FIELDS),
        nps({"email": "lin@globex.example", "score": 6,
             "comment": "Reports take too long to load.",
             "dateAnswered": "2026-11-21T14:03:11Z", "source": "typeform"},
            key="typeform-b7c41d0e9a2f4e6b8d13c5a7f9e20b34", version=1795269791000000),
        nps({"email": "sam@initech.example", "score": 10, "comment": "It just works.",
             "dateAnswered": "2026-11-23T08:47:55Z", "source": "typeform"},
            key="typeform-c9e82f1a6b3d4c7e9f05a1b2d3e4f607", version=1795423675000000),
    ]  # fmt: skip


def test_a_polled_response_and_its_webhook_delivery_are_the_same_record() -> None:
    page = json.loads((FIXTURES / "responses_page.json").read_text())
    first = polled(page["items"][0])

    assert mapped(first) == mapped(example())
    assert verify({"Typeform-Signature": sign(SECRET, encoded(first))}, encoded(first),
                  SECRET, NOW) == TOKEN  # fmt: skip


# --- options ----------------------------------------------------------------------------


def test_the_forms_option_takes_comma_separated_form_ids() -> None:
    options = source_options(SOURCES["typeform"], {"typeform.forms": "abc,def"})

    assert options["forms"] == "abc,def"
    assert options["score_ref"] == ""


@pytest.mark.parametrize(
    "given",
    [
        {"typeform.forms": "a b"},
        {"typeform.forms": "abc,"},
        {"typeform.score_ref": "nps;score"},
        {"typeform.no_such_option": "x"},
    ],
)
def test_invalid_typeform_options_are_refused(given: dict[str, str]) -> None:
    with pytest.raises(OptionError, match="typeform"):
        source_options(SOURCES["typeform"], given)


def test_checked_per_form_options_reach_the_mapping() -> None:
    given = {
        "typeform.score_ref": "otherform:nps_score,lT4Z3j:ease",
        "typeform.email_ref": "hidden.account_email",
        "typeform.campaign": "lT4Z3j:6543210fedcba98765432101",
        "typeform.fallback_company": "extid-acme",
    }
    event = example()
    event["form_response"]["hidden"]["account_email"] = "billing@acme.example"

    assert mapped(event, source_options(SOURCES["typeform"], given)) == [
        nps({"email": "billing@acme.example", "score": 4,
             "comment": "Fast onboarding, great support.", "dateAnswered": SUBMITTED,
             "source": "typeform", "campaignId": "6543210fedcba98765432101",
             "~fallbackCompany": "extid-acme"})
    ]  # fmt: skip


@pytest.mark.parametrize("score", [float("inf"), float("nan"), "--5", "\u00b2", "nine"])
def test_a_score_that_is_no_whole_number_is_rejected_not_misread(score: object) -> None:
    with pytest.raises(RecordRejected, match="is not a whole number"):
        nps_change(SurveyResponse("typeform", "typeform-t", "ada@acme.example", score), 1, "e")
