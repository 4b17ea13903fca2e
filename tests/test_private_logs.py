"""Logs at info carry ids, keys, counts and reasons: never e-mails, names or amounts.

The survey and billing flows run end to end with logging at info, including failures
that are logged (a dead letter whose reason names an e-mail, a flush whose records cannot
be encoded); everything written to stderr is searched for the payloads' values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stripe.test_stripe import event_body
from tests.stripe.test_stripe_flow import post_stripe
from tests.surveys.harness import Surveys, typeform_event
from tests.test_dev_flow import Embedded
from worker.runtime import logs


@pytest.fixture
def info_logs() -> Iterator[None]:
    logs.configure("info")
    yield
    logs.configure("warning")


def test_the_survey_flow_logs_no_e_mail_and_no_answer(
    tmp_path: Path, info_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    surveys = Surveys(tmp_path)
    try:
        surveys.company("Acme", "acme.example")
        surveys.post_typeform(typeform_event("tok-1", "ada.lovelace@acme.example", 9))
        # a respondent no company takes: its dead letter's reason names the e-mail
        surveys.post_typeform(typeform_event("tok-2", "kim.stranger@nowhere.example", 3))
        surveys.drain()
        assert len(surveys.letters()) == 1
    finally:
        surveys.close()

    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "flush.dead_letter" in text  # the failure was logged, with its reason ...
    for value in ("ada.lovelace", "kim.stranger", "Acme"):  # ... but no value
        assert value not in text


def test_the_billing_flow_logs_no_name_e_mail_or_amount(
    tmp_path: Path, info_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    customer = json.loads(event_body("customer.created"))["data"]["object"]
    invoice = json.loads(event_body("invoice.paid"))["data"]["object"]
    system = Embedded(tmp_path)
    try:
        for name in ("customer.created", "customer.subscription.created", "invoice.paid"):
            assert post_stripe(system, name) == 202
        system.drain()
    finally:
        system.close()

    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "flush.done" in text
    values = [customer.get("email"), customer.get("name"), str(invoice["amount_paid"])]
    for value in filter(None, values):
        assert f"={value}" not in text
        assert f"'{value}'" not in text
        assert f" {value} " not in text


def test_an_error_below_debug_is_one_line_without_the_values_it_held(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("info")
    log = logs.structlog.get_logger("t")
    try:
        try:
            record = {"email": "ada@acme.example", "mrr": 12345}  # a frame's local
            raise ValueError(f"cannot send a record of {len(record)} fields")
        except ValueError:
            log.exception("flush.failed", connection="acme")
        logs.configure("debug")
        try:
            raise ValueError("shown at debug")
        except ValueError:
            log.exception("flush.failed")
    finally:
        logs.configure("warning")

    err = capsys.readouterr().err
    info_line, *debug_lines = err.splitlines()
    assert "ada@acme.example" not in err
    assert "12345" not in info_line
    assert "error='ValueError: cannot send a record of 2 fields'" in info_line
    assert "Traceback" not in info_line
    assert any("Traceback" in line for line in debug_lines)
