"""What a survey response means in Planhat, whichever survey tool it comes from.

Each survey source reads its payload into a ``SurveyResponse``; here it becomes one Planhat
NPS record keyed by ``sourceId`` (so a redelivery or an edited response updates the same
record), or a rejection a person understands: no score, a score outside 0-10, no e-mail.

The record names its respondent by e-mail only. Linking it to the right enduser and
company needs Planhat's directory, so that happens when it is sent
(connectors/surveys/respondents.py): the enduser with that e-mail, else a new one on the
company whose domains hold the e-mail's domain, else on the connection's fallback company,
else a dead letter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from connectors.change import Change, RecordRejected
from connectors.options import Option

# Fields whose name starts with "~" are for planhat-sync itself and never sent to Planhat.
FALLBACK_COMPANY = "~fallbackCompany"

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # fullmatch only
WHOLE = re.compile(r"-?[0-9]+")

# "ref" for every form, or "form_id:ref,form_id:ref" per form (a later entry wins).
PER_FORM = r"|[A-Za-z0-9_.:\- ]+(?:,[A-Za-z0-9_.:\- ]+)*"


def fallback_option(source: str) -> Option:
    return Option(
        "fallback_company",
        "",
        r"|[A-Za-z0-9_.:\-]+",
        f"the Planhat company ({source} respondents whose e-mail domain no company has go "
        "there): its _id, extid-<externalId> or srcid-<sourceId>; empty: a dead letter",
    )


def per_form(value: str, form_id: str) -> str | None:
    """The setting for ``form_id`` out of ``"ref"`` or ``"form:ref,form2:ref2"``."""
    found = None
    for entry in filter(None, (part.strip() for part in value.split(","))):
        form, sep, setting = entry.partition(":")
        if not sep:
            found = entry  # for every form
        elif form == form_id:
            return setting
    return found


@dataclass(frozen=True, slots=True)
class SurveyResponse:
    source: str  # "typeform"
    key: str  # the NPS record's sourceId
    email: str | None
    score: object  # as answered; checked here
    comment: str | None = None
    answered_at: str | None = None  # ISO 8601
    campaign: str | None = None  # a Planhat campaign reference
    fallback_company: str | None = None


def nps_change(response: SurveyResponse, version: int, event_id: str) -> Change:
    what = f"{response.source} response {response.key}"
    if response.score is None:
        raise RecordRejected(f"{what} has no NPS score: no 0-10 answer was found")
    score = response.score
    if isinstance(score, str) and WHOLE.fullmatch(score.strip()):
        score = int(score)  # a choice's text, "9"
    if (
        isinstance(score, bool)
        or not isinstance(score, int | float)
        or not math.isfinite(score)
        or score != int(score)
    ):
        raise RecordRejected(f"{what}: the score {score!r} is not a whole number")
    if not 0 <= score <= 10:
        raise RecordRejected(f"{what}: the score {score} is outside 0-10")
    email = (response.email or "").strip().lower()
    if not email:
        raise RecordRejected(f"{what} has no e-mail, so the score cannot go to an enduser")
    if not EMAIL.fullmatch(email):
        raise RecordRejected(f"{what}: {response.email!r} is not an e-mail address")
    fields = {
        "email": email,
        "score": int(score),
        "comment": response.comment,
        "dateAnswered": response.answered_at,
        "source": response.source,
        "campaignId": response.campaign,
        FALLBACK_COMPANY: response.fallback_company,
    }
    return Change(
        model="nps",
        key_field="sourceId",
        key=response.key,
        fields={k: v for k, v in fields.items() if v not in (None, "")},
        version=version,
        event_id=event_id,
    )
