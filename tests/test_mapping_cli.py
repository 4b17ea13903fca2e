"""``planhat-sync connections mapping add|list|remove`` and ``planhat-sync planhat
customfields``: a rule is checked against its source and the tenant's Planhat fields when
added, refused with one line, or its field created with ``--create``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner, Result

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.connections import Connections
from state.crypto import SecretBox
from state.db import make_engine
from tests.conftest import FAST_RETRY
from tests.engine.custom_fields_flow import custom_of, customer_event, flush, receive, writes
from worker.cli import app
from worker.runtime.settings import env_options

KEY = Fernet.generate_key().decode()
SEGMENT = ["stripe", "customer.metadata.segment", "companies.custom.Segment"]


def run(tmp_path: Path, sandbox: BackgroundSandbox, *args: str, **env: str) -> Result:
    environment = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
        "PLANHAT_SYNC_SECRET_KEY": KEY,
        "PLANHAT_BASE_URL": sandbox.url,
        **env,
    }
    return CliRunner().invoke(app, list(args), env=environment)


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url, retry=FAST_RETRY) as client:
        yield client


@pytest.fixture
def acme(tmp_path: Path, sandbox: BackgroundSandbox) -> str:
    added = run(tmp_path, sandbox, "connections", "add", "acme", "--planhat-token", "t",
                "--planhat-base-url", sandbox.url)  # fmt: skip
    assert added.exit_code == 0, added.stderr
    return "acme"


def one_line_refusal(result: Result, says: str) -> None:
    assert result.exit_code == 2, result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: refused: ")
    assert says in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def stored_options(tmp_path: Path) -> dict[str, str]:
    engine = make_engine(f"sqlite:///{tmp_path}/state.db")
    connections = Connections(engine, box=lambda: SecretBox(KEY), default=lambda: None)
    return dict(connections.options("acme"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["stripe", "customer.metdata.segment", "companies.custom.Segment"], "unknown path"),
        (["stripe", "customer.created", "companies.custom.Segment", "--type", "number"],
         "type mismatch: stripe customer.created is date, not number"),
        ([*SEGMENT, "--type", "number"],
         "type mismatch: Planhat's companies.custom.Segment is text, the rule makes number"),
        (["stripe", "customer.metadata.tier", "companies.custom.Tier"],
         "Planhat has no custom field companies.custom.Tier: create it there, or add --create"),
    ],
)  # fmt: skip
def test_a_rule_is_refused_with_a_one_line_reason(
    tmp_path: Path, sandbox: BackgroundSandbox, planhat: PlanhatClient, acme: str,
    args: list[str], says: str,
) -> None:  # fmt: skip
    planhat.create("customfields", {"name": "Segment", "parent": "company", "type": "text",
                                    "isHidden": False})  # fmt: skip

    refused = run(tmp_path, sandbox, "connections", "mapping", "add", acme, *args)

    one_line_refusal(refused, says)
    assert stored_options(tmp_path) == {}  # nothing kept
    assert len(list(planhat.list("customfields"))) == 1  # nothing created


def test_create_makes_the_field_and_the_next_sync_fills_it(
    tmp_path: Path, sandbox: BackgroundSandbox, planhat: PlanhatClient, acme: str
) -> None:
    added = run(tmp_path, sandbox, "connections", "mapping", "add", acme, *SEGMENT, "--create")

    assert added.exit_code == 0, added.stderr
    assert "created companies.custom.Segment (text) in Planhat" in added.stdout
    [field] = planhat.list("customfields")
    assert {k: field[k] for k in ("name", "parent", "type", "isHidden")} == {
        "name": "Segment", "parent": "company", "type": "text", "isHidden": False
    }  # fmt: skip
    assert stored_options(tmp_path) == {
        "stripe.custom.companies.Segment": "text:customer.metadata.segment"
    }

    # the next sync fills it
    engine = make_engine(f"sqlite:///{tmp_path}/state.db")
    receive(engine, acme, "stripe", customer_event("cus_9", 100, segment="Enterprise"))
    flush(engine, planhat, acme)
    assert custom_of(planhat, "companies")["cus_9"] == {"Segment": "Enterprise"}


def test_rules_are_listed_and_removed(
    tmp_path: Path, sandbox: BackgroundSandbox, planhat: PlanhatClient, acme: str
) -> None:
    run(tmp_path, sandbox, "connections", "mapping", "add", acme, *SEGMENT, "--create")
    run(tmp_path, sandbox, "connections", "mapping", "add", acme, "zendesk",
        "ticket.custom_fields[360001]", "tickets.custom.Escalation", "--create")  # fmt: skip

    listed = run(tmp_path, sandbox, "connections", "mapping", "list", acme)
    removed = run(tmp_path, sandbox, "connections", "mapping", "remove", acme, "stripe",
                  "companies.custom.Segment")  # fmt: skip
    again = run(tmp_path, sandbox, "connections", "mapping", "remove", acme, "stripe",
                "companies.custom.Segment")  # fmt: skip

    assert listed.stdout.splitlines() == [
        "stripe: customer.metadata.segment -> companies.custom.Segment (text)",
        "zendesk: ticket.custom_fields[360001] -> tickets.custom.Escalation (text)",
    ]
    assert removed.exit_code == 0, removed.stderr
    assert list(stored_options(tmp_path)) == ["zendesk.custom.tickets.Escalation"]
    assert again.exit_code == 1
    assert again.stderr == "error: acme has no stripe rule for companies.custom.Segment\n"


def test_planhat_customfields_lists_the_tenants_fields_per_model(
    tmp_path: Path, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    for parent, name, kind in (("company", "Segment", "text"), ("nps", "Plan", "text"),
                               ("company", "Seats", "number")):  # fmt: skip
        planhat.create("customfields", {"name": name, "parent": parent, "type": kind,
                                        "isHidden": name == "Plan"})  # fmt: skip

    listed = run(tmp_path, sandbox, "planhat", "customfields")

    assert listed.exit_code == 0, listed.stderr
    shown = json.loads(listed.stdout)
    assert {model: [(f["name"], f["type"], f["isHidden"]) for f in fields]
            for model, fields in shown.items()} == {
        "companies": [("Seats", "number", False), ("Segment", "text", False)],
        "nps": [("Plan", "text", True)],
    }  # fmt: skip


def test_the_default_connection_reads_its_rules_from_the_mappings_file(
    tmp_path: Path, sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "mappings.toml"
    file.write_text(
        '[[mapping]]\nsource = "stripe"\npath = "customer.metadata.segment"\n'
        'field = "companies.custom.Segment"\ntype = "text"\n'
    )
    monkeypatch.setenv("PLANHAT_SYNC_MAPPINGS_FILE", str(file))

    assert env_options() == {"stripe.custom.companies.Segment": "text:customer.metadata.segment"}
    listed = run(tmp_path, sandbox, "connections", "mapping", "list", "default",
                 PLANHAT_SYNC_MAPPINGS_FILE=str(file))  # fmt: skip
    assert listed.stdout == "stripe: customer.metadata.segment -> companies.custom.Segment (text)\n"
    added = run(tmp_path, sandbox, "connections", "mapping", "add", "default", *SEGMENT,
                PLANHAT_SYNC_MAPPINGS_FILE=str(file))  # fmt: skip
    one_line_refusal(added, "the default connection's rules are in PLANHAT_SYNC_MAPPINGS_FILE")

    file.write_text('[[mapping]]\nsource = "stripe"\npath = "customer.nope"\n'
                    'field = "companies.custom.Segment"\ntype = "text"\n')  # fmt: skip
    listed = run(tmp_path, sandbox, "connections", "mapping", "list", "default",
                 PLANHAT_SYNC_MAPPINGS_FILE=str(file))  # fmt: skip
    assert listed.exit_code != 0
    assert "unknown path 'customer.nope'" in listed.stderr
    assert "Traceback" not in listed.stderr


def test_a_rule_added_then_replay_since_fills_every_synced_record_exactly_once(
    tmp_path: Path, sandbox: BackgroundSandbox, planhat: PlanhatClient, acme: str
) -> None:
    # given: two customers synced (two events each) before the rule
    engine = make_engine(f"sqlite:///{tmp_path}/state.db")
    for number, customer in enumerate(("cus_1", "cus_2")):
        receive(engine, acme, "stripe", customer_event(customer, 100 + number, segment="A"))
        receive(engine, acme, "stripe", customer_event(customer, 200 + number, segment="B"))
    flush(engine, planhat, acme)
    before = writes(sandbox, "companies")

    # when: the rule is added, then `replay --since` (no broker here: the flush is ours)
    added = run(tmp_path, sandbox, "connections", "mapping", "add", acme, *SEGMENT, "--create")
    replayed = run(tmp_path, sandbox, "replay", "--since", "2000-01-01T00:00:00Z",
                   REDIS_URL="redis://127.0.0.1:1/0")  # fmt: skip
    flush(engine, planhat, acme)

    # then: each record written once more, with its newest value
    assert added.exit_code == 0, added.stderr
    assert replayed.exit_code == 0, replayed.stderr
    assert json.loads(replayed.stdout.splitlines()[0])["queued"] == 2
    assert (before, writes(sandbox, "companies")) == (2, 4)
    assert custom_of(planhat, "companies") == {"cus_1": {"Segment": "B"},
                                               "cus_2": {"Segment": "B"}}  # fmt: skip
