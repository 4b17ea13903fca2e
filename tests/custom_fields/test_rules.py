"""Custom field rules, pure: the path syntax, the conversions, the checks against a source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.change import Change, RecordRejected
from connectors.custom_fields.convert import ConversionError, convert
from connectors.custom_fields.paths import MISSING, PathError, parse, resolve
from connectors.custom_fields.rules import (
    RuleError,
    check_with_source,
    new_rule,
    rule_of_option,
    rules_from_file,
    rules_of,
    with_custom_fields,
)
from connectors.options import OptionError
from connectors.sources import SOURCES, check_options
from state.tables import Link
from worker.pipeline.conflicts import ownership_of
from worker.pipeline.links import nested

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROOTS = {
    "customer": {"metadata": {"segment": "Enterprise", "seats": "12"}, "created": 1648320107},
    "ticket": {"custom_fields": [{"id": 360001, "value": "high"}, {"id": 7, "value": None}]},
    "answer": [{"ref": "plan", "id": "x1", "value": "Pro"}],
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("customer.metadata.segment", "Enterprise"),
        ("customer.created", 1648320107),
        ("ticket.custom_fields[360001]", "high"),
        ("ticket.custom_fields[7]", None),  # emptied in the source: a value (null)
        ("answer(ref=plan)", "Pro"),
        ("answer(id=x1)", "Pro"),
        ("customer.metadata.tier", MISSING),
        ("ticket.custom_fields[9]", MISSING),
        ("answer(ref=other)", MISSING),
        ("invoice.total", MISSING),
        ("customer.metadata.segment.deeper", MISSING),
    ],
)
def test_a_path_finds_its_value_or_says_it_is_missing(path: str, found: object) -> None:
    assert resolve(parse(path), ROOTS) == found


@pytest.mark.parametrize("path", ["", ".segment", "customer..x", "customer[]", "answer(ref)"])
def test_a_malformed_path_is_refused_with_where(path: str) -> None:
    with pytest.raises(PathError, match="path"):
        parse(path)


@pytest.mark.parametrize(
    ("value", "kind", "converted"),
    [
        ("Enterprise", "text", "Enterprise"),
        (12, "text", "12"),
        (["a", "b"], "text", "a, b"),
        ("12", "number", 12),
        (" 2.5 ", "number", 2.5),
        (7, "number", 7),
        (1648320107, "date", "2022-03-26T18:41:47.000Z"),
        ("2024-01-31", "date", "2024-01-31T00:00:00.000Z"),
        ("2024-01-31T10:00:00+02:00", "date", "2024-01-31T08:00:00.000Z"),
        (["vip", "eu"], "list", ["vip", "eu"]),
        ("vip", "list", ["vip"]),
        (None, "number", None),
    ],
)
def test_values_become_the_type_planhat_expects(
    value: object, kind: str, converted: object
) -> None:
    assert convert(value, kind) == converted


@pytest.mark.parametrize(
    ("value", "kind"),
    [("many", "number"), (True, "number"), ("soon", "date"), ({"a": 1}, "text"), (3, "list")],
)
def test_a_value_not_of_the_type_is_refused(value: object, kind: str) -> None:
    with pytest.raises(ConversionError):
        convert(value, kind)


def test_a_rule_round_trips_through_its_option() -> None:
    rule = new_rule("stripe", "customer.metadata.segment", "companies.custom.Deal size", "text")
    key, value = rule.option

    assert (key, value) == ("stripe.custom.companies.Deal size", "text:customer.metadata.segment")
    assert rule_of_option(key, value) == rule
    assert rules_of({key: value, "stripe.trials": "skip"}) == [rule]


@pytest.mark.parametrize(
    ("source", "path", "target", "kind", "says"),
    [
        ("stripe", "customer.metdata.segment", "companies.custom.S", "text", "unknown path"),
        ("stripe", "invoice.total", "companies.custom.S", "number", "unknown path"),
        ("stripe", "customer.created", "companies.custom.S", "number", "type mismatch"),
        ("zendesk", "ticket.tags", "tickets.custom.T", "number", "type mismatch"),
        ("stripe", "customer.metadata.x", "tickets.custom.S", "text", "reaches companies"),
        ("chargebee", "customer.x", "companies.custom.S", "text", "offers no fields"),
        ("nosuch", "customer.x", "companies.custom.S", "text", "no source named"),
    ],
)
def test_a_rule_its_source_cannot_serve_is_refused_with_one_line(
    source: str, path: str, target: str, kind: str, says: str
) -> None:
    rule = new_rule(source, path, target, kind)
    with pytest.raises(RuleError, match=says) as refused:
        check_with_source(rule, SOURCES.get(source))
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("target", "kind", "says"),
    [
        ("companies.Segment", "text", "<planhat model>.custom.<Name>"),
        ("companys.custom.Segment", "text", "unknown Planhat model"),
        ("companies.custom.Segment", "boolean", "no type"),
    ],
)
def test_a_malformed_rule_is_refused(target: str, kind: str, says: str) -> None:
    with pytest.raises(RuleError, match=says):
        new_rule("stripe", "customer.metadata.segment", target, kind)


def test_options_holding_a_bad_rule_are_refused_like_a_bad_option() -> None:
    with pytest.raises(OptionError, match="unknown path"):
        check_options({"stripe.custom.companies.S": "text:customer.nope"})
    check_options({"stripe.custom.companies.S": "text:customer.metadata.segment"})


def stripe_event(**metadata: str) -> bytes:
    path = FIXTURES / "stripe" / "stripe-events-2020-08-27" / "customer.created.json"
    event = json.loads(path.read_text())
    event["data"]["object"]["metadata"] = metadata
    return json.dumps(event).encode()


def test_rules_add_their_values_to_the_changes_of_their_model_only() -> None:
    source = SOURCES["stripe"]
    options = dict(
        [
            new_rule(
                "stripe", "customer.metadata.seats", "companies.custom.Seats", "number"
            ).option,
            new_rule("stripe", "customer.metadata.nope", "companies.custom.Nope", "text").option,
            new_rule("stripe", "subscription.status", "licenses.custom.Status", "text").option,
        ]
    )
    body = stripe_event(seats="12")
    changes = source.changes(body, "evt_1", {})

    mapped = with_custom_fields(source, body, changes, options)

    [company] = [c for c in mapped if c.model == "companies"]
    assert company.fields["custom.Seats"] == 12
    assert "custom.Nope" not in company.fields  # the event does not hold it: nothing added
    assert all("custom.Seats" not in c.fields for c in mapped if c.model != "companies")


def test_a_value_not_of_its_rules_type_rejects_the_record_naming_the_field() -> None:
    source = SOURCES["stripe"]
    options = dict([new_rule("stripe", "customer.metadata.seats", "companies.custom.Seats",
                             "number").option])  # fmt: skip
    body = stripe_event(seats="many")
    changes: list[Change] = source.changes(body, "evt_1", {})

    with pytest.raises(RecordRejected, match=r"companies\.custom\.Seats \(number\)"):
        with_custom_fields(source, body, changes, options)


def test_a_rules_file_gives_the_default_connection_its_rules(tmp_path: Path) -> None:
    file = tmp_path / "mappings.toml"
    file.write_text(
        '[[mapping]]\nsource = "stripe"\npath = "customer.metadata.segment"\n'
        'field = "companies.custom.Segment"\ntype = "text"\n'
    )
    assert rules_from_file(file) == {
        "stripe.custom.companies.Segment": "text:customer.metadata.segment"
    }

    file.write_text('[[mapping]]\nsource = "stripe"\npath = "customer.metadata.segment"\n')
    with pytest.raises(RuleError, match="mapping 1: missing field, type"):
        rules_from_file(file)


def test_a_field_a_rule_fills_is_the_sources_never_written_back() -> None:
    link = Link(connection="acme", model="tickets", key="sourceId=42", source="zendesk",
                key_field="sourceId", key_value="42")  # fmt: skip
    options = dict([new_rule("zendesk", "ticket.custom_fields[1]", "tickets.custom.Escalation",
                             "text").option])  # fmt: skip

    assert "custom.Escalation" in ownership_of(link, options).source
    assert "custom.Escalation" not in ownership_of(link, {}).source
    assert ownership_of(link, {}).source <= ownership_of(link, options).source


def test_flat_custom_fields_are_sent_in_one_custom_object() -> None:
    given = {"name": "Acme", "custom": {"Owner": "ada", "Tier": "old"}, "custom.Tier": "gold"}

    assert nested(given) == {"name": "Acme", "custom": {"Owner": "ada", "Tier": "gold"}}
    assert given["custom"] == {"Owner": "ada", "Tier": "old"}  # not changed
    assert nested({"custom": {}}) == {"custom": {}}
