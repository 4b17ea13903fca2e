"""Typeform ``form_response`` events → one Planhat NPS record each (pure functions).

A response lists ``answers``, each naming its field (``field.id``, ``field.type``,
``field.ref``) and holding its value under its own ``type`` (``number``, ``text``,
``email``…) (https://www.typeform.com/developers/webhooks/example-payload/). Which answer
is the score, the e-mail and the comment is chosen per form by options, with defaults
that fit a plain NPS form; the rules for the record itself are in connectors/surveys.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.change import Change, MappingError, version_number
from connectors.options import Option
from connectors.surveys import PER_FORM, SurveyResponse, fallback_option, nps_change, per_form
from connectors.webhooks import load_json

Answer = dict[str, Any]

OPTIONS = (
    Option(
        "score_ref",
        "",
        PER_FORM,
        "the ref of the field holding the 0-10 score ('ref' for every form, or "
        "'form_id:ref,…'); empty: the first nps or opinion_scale answer",
    ),
    Option(
        "email_ref",
        "",
        PER_FORM,
        "where the respondent's e-mail is: 'hidden.<name>' or an e-mail field's ref (per "
        "form as for score_ref); empty: the hidden field 'email', else the first e-mail answer",
    ),
    Option(
        "comment_ref",
        "",
        PER_FORM,
        "the ref of the field holding the comment (per form as for score_ref); empty: the "
        "first long_text answer",
    ),
    Option(
        "campaign",
        "",
        PER_FORM,
        "the Planhat campaign the scores belong to ('form_id:<campaign _id>,…'); empty: none",
    ),
    fallback_option("typeform"),
    Option(
        "forms",
        "",
        r"|[A-Za-z0-9]+(?:,[A-Za-z0-9]+)*",
        "the form ids the poller reads (with a typeform:api_key secret), comma-separated",
    ),
)

SCORE_TYPES = ("nps", "opinion_scale")


def value(answer: Answer) -> Any:
    """An answer's value sits under its type: {"type": "number", "number": 9}."""
    return answer.get(str(answer.get("type")))


def _by_ref(answers: list[Answer], ref: str) -> Answer | None:
    return next((a for a in answers if (a.get("field") or {}).get("ref") == ref), None)


def _first(answers: list[Answer], *field_types: str) -> Answer | None:
    return next((a for a in answers if (a.get("field") or {}).get("type") in field_types), None)


def _score(answers: list[Answer], ref: str | None) -> Any:
    answer = _by_ref(answers, ref) if ref else _first(answers, *SCORE_TYPES)
    return value(answer) if answer else None


def _email(response: Answer, answers: list[Answer], ref: str | None) -> Any:
    hidden = response.get("hidden") or {}
    if ref and ref.startswith("hidden."):
        return hidden.get(ref.removeprefix("hidden."))
    if ref:
        answer = _by_ref(answers, ref)
        return value(answer) if answer else None
    if hidden.get("email"):
        return hidden["email"]
    answer = next((a for a in answers if a.get("type") == "email"), None)
    return value(answer) if answer else None


def _comment(answers: list[Answer], ref: str | None) -> Any:
    answer = _by_ref(answers, ref) if ref else _first(answers, "long_text")
    return value(answer) if answer else None


def response_change(response: Answer, options: Mapping[str, str], event_id: str) -> Change:
    form_id = str(response.get("form_id") or "")
    answers = list(response.get("answers") or [])

    def setting(name: str) -> str | None:
        return per_form(options.get(name, ""), form_id)

    comment = _comment(answers, setting("comment_ref"))
    survey = SurveyResponse(
        source="typeform",
        key=f"typeform-{response['token']}",
        email=_email(response, answers, setting("email_ref")),
        score=_score(answers, setting("score_ref")),
        comment=str(comment) if comment else None,
        answered_at=response.get("submitted_at"),
        campaign=setting("campaign"),
        fallback_company=options.get("fallback_company") or None,
    )
    return nps_change(survey, version_number(response["submitted_at"]), event_id)


def changes(body: bytes, event_id: str, options: Mapping[str, str] | None = None) -> list[Change]:
    try:
        event = load_json(body)
        if event.get("event_type") != "form_response":
            return []
        return [response_change(event["form_response"], options or {}, event_id)]
    except MappingError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise MappingError(f"not a Typeform form_response we can read: {error!r}") from None
