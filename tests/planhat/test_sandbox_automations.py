"""The sandbox's Planhat Automations: a hint POSTed on every create, update and delete of a
model (API writes included, as Planhat does), edits made as in Planhat's UI, a knob that
drops a share of the hints, and counters. The receiver is a local fake over a real socket.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests import stand_in_http
from tests.conftest import free_port_pair, sandbox_stats
from tests.engine.harness import wait_until
from tests.outbound import OutboundReceiver
from tests.planhat.sandbox_http import Start, client_for, company, create

SECRET = "automation-secret"


@pytest.fixture
def receiver() -> Iterator[OutboundReceiver]:
    with OutboundReceiver() as server:
        yield server


def automated(start: Start, receiver: OutboundReceiver, **config: object) -> BackgroundSandbox:
    return start(
        SandboxConfig(
            rate_per_minute=1e9,
            burst=10**6,
            automations={"companies": f"{receiver.url}/hooks/companies"},
            automation_secret=SECRET,
            seed=3,
            **config,  # type: ignore[arg-type]
        )
    )


def settled(sandbox: BackgroundSandbox) -> dict[str, int]:
    """The automation counters once nothing is on its way."""
    wait_until(lambda: automations(sandbox)["pending"] == 0, timeout=10, what="the hints")
    return automations(sandbox)


def automations(sandbox: BackgroundSandbox) -> dict[str, int]:
    counts: dict[str, int] = sandbox_stats(sandbox)["automations"]  # type: ignore[assignment]
    return counts


def test_api_writes_fire_a_hint_for_each_create_update_and_delete(
    start_sandbox: Start, receiver: OutboundReceiver
) -> None:
    sandbox = automated(start_sandbox, receiver)
    with client_for(sandbox) as api:
        # given a company created, then updated by bulk upsert, then deleted
        acme = company(api, "acme")
        answer = api.put("/companies", json=[{"sourceId": "src-acme", "name": "Acme 2"}])
        assert answer.status_code == 200
        assert api.delete(f"/companies/{acme['_id']}").status_code == 200
        # and a write to a model without an automation
        create(api, "issues", {"title": "no automation here"})

    counts = settled(sandbox)

    hints = [delivery.json() for delivery in receiver.all()]
    assert [(h["model"], h["_id"], h["action"]) for h in hints] == [
        ("companies", acme["_id"], "created"),
        ("companies", acme["_id"], "updated"),
        ("companies", acme["_id"], "deleted"),
    ]
    assert all(h["time"].endswith("Z") for h in hints)
    assert {d.headers["authorization"] for d in receiver.all()} == {f"Bearer {SECRET}"}
    assert {d.path for d in receiver.all()} == {"/hooks/companies"}
    assert counts == {
        "fired": 3, "dropped": 0, "delivered": 3, "failed": 0, "ui_edits": 0, "pending": 0
    }  # fmt: skip


def test_a_ui_edit_changes_the_record_without_a_token_and_fires_the_automation(
    start_sandbox: Start, receiver: OutboundReceiver
) -> None:
    sandbox = automated(start_sandbox, receiver)
    with client_for(sandbox) as api:
        acme = company(api, "acme", phone="1")
    settled(sandbox)
    requests_before = sandbox_stats(sandbox)["requests"]

    edited = stand_in_http.post(
        f"{sandbox.url}/_sandbox/ui/companies/{acme['_id']}", json={"phone": "2"}
    )

    assert edited.status_code == 200
    assert edited.json()["phone"] == "2"
    assert edited.json()["name"] == acme["name"]  # partial, as a person edits one field
    with client_for(sandbox) as api:
        assert api.get(f"/companies/{acme['_id']}").json()["phone"] == "2"
    counts = settled(sandbox)
    assert (counts["ui_edits"], counts["delivered"]) == (1, 2)
    assert receiver.all()[-1].json()["action"] == "updated"
    # the UI is not the API: the edit is not an API request (reading it back is one)
    assert sandbox_stats(sandbox)["requests"] == requests_before + 1


def test_a_ui_edit_of_a_missing_record_is_404_and_fires_nothing(
    start_sandbox: Start, receiver: OutboundReceiver
) -> None:
    sandbox = automated(start_sandbox, receiver)

    missing = stand_in_http.post(f"{sandbox.url}/_sandbox/ui/companies/{'0' * 24}", json={"a": 1})
    not_json = stand_in_http.post(f"{sandbox.url}/_sandbox/ui/companies/{'0' * 24}", content=b"[")

    assert (missing.status_code, not_json.status_code) == (404, 400)
    assert settled(sandbox)["fired"] == 0


def test_the_drop_knob_loses_about_that_share_of_hints(
    start_sandbox: Start, receiver: OutboundReceiver
) -> None:
    sandbox = automated(start_sandbox, receiver)
    knob = stand_in_http.post(f"{sandbox.url}/_sandbox/automations", json={"drop_rate": 0.3})
    assert knob.json()["drop_rate"] == 0.3

    with client_for(sandbox) as api:
        answer = api.put(
            "/companies", json=[{"sourceId": f"c{n}", "name": "C"} for n in range(400)]
        )
        assert answer.status_code == 200

    counts = settled(sandbox)
    assert counts["fired"] == 400
    assert 80 <= counts["dropped"] <= 160
    assert counts["delivered"] == 400 - counts["dropped"] == len(receiver.all())


def test_a_failed_delivery_is_counted_and_not_retried(
    start_sandbox: Start, receiver: OutboundReceiver
) -> None:
    receiver.answer(500, 200)  # a retry would succeed: there must be none
    sandbox = automated(start_sandbox, receiver)
    with client_for(sandbox) as api:
        company(api, "acme")

    counts = settled(sandbox)

    assert (counts["failed"], counts["delivered"]) == (1, 0)
    assert len(receiver.all()) == 1


def test_reset_forgets_the_counters(start_sandbox: Start, receiver: OutboundReceiver) -> None:
    sandbox = automated(start_sandbox, receiver)
    with client_for(sandbox) as api:
        company(api, "acme")
    settled(sandbox)

    stand_in_http.post(f"{sandbox.url}/_sandbox/reset").raise_for_status()

    assert automations(sandbox)["fired"] == 0


def test_the_cli_configures_automations(receiver: OutboundReceiver) -> None:
    port = free_port_pair()
    command = [str(Path(sys.executable).with_name("planhat-sync")), "sandbox", "--port", str(port)]
    command += ["--automation", f"companies={receiver.url}/cli", "--automation-secret", SECRET]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                stand_in_http.get(f"{url}/_sandbox/stats").raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.1)
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer t"}) as api:
            company(api, "acme")
        wait_until(lambda: len(receiver.all()) == 1, timeout=10, what="the hint")
    finally:
        server.terminate()
        server.wait(timeout=10)

    [delivery] = receiver.all()
    assert (delivery.path, delivery.json()["action"]) == ("/cli", "created")
    assert delivery.headers["authorization"] == f"Bearer {SECRET}"


def test_the_cli_refuses_an_automation_on_an_unknown_model() -> None:
    command = [str(Path(sys.executable).with_name("planhat-sync")), "sandbox"]
    done = subprocess.run(
        [*command, "--automation", "compnies=http://127.0.0.1:1/x"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 2
    assert "companies" in done.stderr  # "Did you mean 'companies'?"
