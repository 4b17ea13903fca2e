"""SurveyMonkey responses → one Planhat NPS record each (pure functions).

Reads the document the worker stored with the event (connectors/surveymonkey/api.py): the
response's answers are ids, so the survey's details say which question is the 0-10 score
and which choice means which number. An edited response (``response_updated``) is the
same record at a newer ``date_modified``: it updates the NPS record, never adds one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from connectors.change import Change, MappingError, version_number
from connectors.options import Option
from connectors.surveymonkey.api import RESPONSE_EVENTS
from connectors.surveys import PER_FORM, SurveyResponse, fallback_option, nps_change, per_form
from connectors.webhooks import load_json

Json = dict[str, Any]
SCALE = [str(n) for n in range(11)]

OPTIONS = (
    Option(
        "score_question",
        "",
        PER_FORM,
        "the id of the question holding the 0-10 score ('id' for every survey, or "
        "'survey_id:question_id,…'); empty: the first question whose choices are 0 to 10",
    ),
    Option(
        "comment_question",
        "",
        PER_FORM,
        "the id of the question holding the comment (as for score_question); empty: the "
        "first open-ended answer",
    ),
    Option(
        "campaign",
        "",
        PER_FORM,
        "the Planhat campaign the scores belong to ('survey_id:<campaign _id>,…')",
    ),
    fallback_option("surveymonkey"),
)


def _questions(survey: Json) -> Iterator[Json]:
    for page in survey.get("pages") or []:
        yield from page.get("questions") or []


def _choices(question: Json) -> list[Json]:
    return list((question.get("answers") or {}).get("choices") or [])


def _is_scale(question: Json) -> bool:
    return [str(c.get("text", "")).strip() for c in _choices(question)] == SCALE


def _choice_number(choice: Json) -> Any:
    text = str(choice.get("text", "")).strip()
    # The text is the number on an NPS scale; its position (1-11) says the same.
    return int(text) if text.isdigit() else (choice.get("position") or 0) - 1


def _answers(response: Json) -> dict[str, list[Json]]:
    return {
        str(q["id"]): list(q.get("answers") or [])
        for page in response.get("pages") or []
        for q in page.get("questions") or []
    }


def _score(survey: Json, answers: dict[str, list[Json]], question_id: str | None) -> Any:
    questions = {str(q["id"]): q for q in _questions(survey)}
    if question_id is None:
        question_id = next((qid for qid, q in questions.items() if _is_scale(q)), None)
    question = questions.get(question_id or "")
    given = answers.get(question_id or "") or []
    if question is None or not given:
        return None
    choices = {str(c["id"]): c for c in _choices(question)}
    choice = choices.get(str(given[0].get("choice_id")))
    return _choice_number(choice) if choice else given[0].get("text")


def _comment(survey: Json, answers: dict[str, list[Json]], question_id: str | None) -> str | None:
    if question_id is None:
        question_id = next(
            (str(q["id"]) for q in _questions(survey) if q.get("family") == "open_ended"
             and any(a.get("text") for a in answers.get(str(q["id"]), []))),
            None,
        )  # fmt: skip
    texts = [a["text"] for a in answers.get(question_id or "", []) if a.get("text")]
    return " ".join(texts) or None


def _email(response: Json) -> Any:
    contact = ((response.get("metadata") or {}).get("contact") or {}).get("email") or {}
    variables = response.get("custom_variables") or {}
    return response.get("email_address") or contact.get("value") or variables.get("email")


def response_change(document: Json, options: Mapping[str, str], event_id: str) -> Change | None:
    response, survey = document["response"], document["survey"]
    if response.get("response_status") != "completed":
        return None  # a partial response is no score yet
    survey_id = str(response.get("survey_id") or document["event"]["resources"]["survey_id"])

    def setting(name: str) -> str | None:
        return per_form(options.get(name, ""), survey_id)

    answers = _answers(response)
    nps = SurveyResponse(
        source="surveymonkey",
        key=f"surveymonkey-{response['id']}",
        email=_email(response),
        score=_score(survey, answers, setting("score_question")),
        comment=_comment(survey, answers, setting("comment_question")),
        answered_at=response.get("date_modified") or response.get("date_created"),
        campaign=setting("campaign"),
        fallback_company=options.get("fallback_company") or None,
    )
    version = version_number(response.get("date_modified") or response["date_created"])
    return nps_change(nps, version, event_id)


def changes(body: bytes, event_id: str, options: Mapping[str, str] | None = None) -> list[Change]:
    """``body`` is the stored document, or the bare callback (at the receiver, before the
    worker fetched the response): that one maps to nothing yet."""
    try:
        document = load_json(body)
        if "event" not in document:
            if "event_type" not in document:
                raise MappingError("not a SurveyMonkey event: no event_type")
            return []
        if document["event"].get("event_type") not in RESPONSE_EVENTS:
            return []
        change = response_change(document, options or {}, event_id)
        return [change] if change else []
    except MappingError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise MappingError(f"not a SurveyMonkey response we can read: {error!r}") from None
