"""The ``planhat-sync`` command line, end to end against the sandbox."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from connectors.planhat.models import MODELS, Operation
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests import stand_in_http
from tests.conftest import free_port_pair
from tests.planhat.samples import change, refs, sample
from worker.cli import app

runner = CliRunner()


def cli(sandbox_url: str, *args: str, token: str | None = None, stdin: str | None = None) -> Any:
    env = {"PLANHAT_BASE_URL": sandbox_url, "PLANHAT_API_TOKEN": token or ""}
    return runner.invoke(app, list(args), env=env, input=stdin)


def ok_json(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_operation_of_every_model_through_the_cli(
    sandbox: BackgroundSandbox, model: str
) -> None:
    spec = MODELS[model]
    url = sandbox.url
    company = "extid-cli-co"
    ok_json(
        cli(
            url,
            "planhat",
            "companies",
            "create",
            "--data",
            '{"name": "Co", "externalId": "cli-co"}',
        )
    )
    record = sample(model, f"cli-{model}", company)

    if spec.supports(Operation.CREATE):
        record_id = ok_json(cli(url, "planhat", model, "create", "--data", json.dumps(record)))[
            "_id"
        ]
    else:
        report = ok_json(cli(url, "planhat", model, "upsert", "--data", json.dumps(record)))
        record_id = report["results"][0]["id"]
    ways = refs(model, record, record_id)
    if spec.supports(Operation.GET):
        for ref in ways:
            assert ok_json(cli(url, "planhat", model, "get", ref))["_id"] == record_id
    name, value = change(model)
    if spec.supports(Operation.UPDATE):
        updated = ok_json(
            cli(url, "planhat", model, "update", ways[-1], "--data", json.dumps({name: value}))
        )
        assert updated[name] == value
    listed = ok_json(cli(url, "planhat", model, "list"))
    assert record_id in {r["_id"] for r in listed}
    page = ok_json(cli(url, "planhat", model, "list", "--limit", "1", "--offset", "0"))
    assert len(page) == 1
    if spec.supports(Operation.UPSERT):
        batch = [{**record, name: value}, sample(model, f"cli-{model}-2", company)]
        report = ok_json(cli(url, "planhat", model, "upsert", "--data", json.dumps(batch)))
        assert [r["outcome"] for r in report["results"]][1] == "created"
        assert report["results"][0]["id"] == record_id
    deleted = ok_json(cli(url, "planhat", model, "delete", record_id))
    assert deleted == {"n": 1, "ok": 1, "deletedCount": 1}
    if spec.supports(Operation.GET):
        gone = cli(url, "planhat", model, "get", record_id)
        assert gone.exit_code == 1
        assert "404" in gone.stderr


def test_data_can_come_from_a_file_or_stdin(sandbox: BackgroundSandbox, tmp_path: Path) -> None:
    path = tmp_path / "company.json"
    path.write_text('{"name": "From a file", "externalId": "f1"}')
    assert (
        ok_json(cli(sandbox.url, "planhat", "companies", "create", "--data", f"@{path}"))["name"]
        == "From a file"
    )
    piped = cli(
        sandbox.url, "planhat", "companies", "create", "--data", "@-", stdin='{"name": "Piped"}'
    )
    assert ok_json(piped)["name"] == "Piped"


def test_an_unknown_model_is_refused_with_the_known_ones(sandbox: BackgroundSandbox) -> None:
    result = cli(sandbox.url, "planhat", "licences", "list")
    assert result.exit_code == 2
    assert "unknown Planhat model 'licences'" in result.stderr
    assert "Did you mean 'licenses'" in result.stderr


def test_invalid_json_is_refused_before_any_call(sandbox: BackgroundSandbox) -> None:
    result = cli(sandbox.url, "planhat", "companies", "create", "--data", "{name: 1}")
    assert result.exit_code == 2
    assert "invalid JSON in --data" in result.stderr
    stats = stand_in_http.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["requests"] == 0


def test_a_missing_required_field_shows_planhats_400_text(sandbox: BackgroundSandbox) -> None:
    result = cli(sandbox.url, "planhat", "licenses", "create", "--data", '{"mrr": 5}')
    assert result.exit_code == 1
    assert "400" in result.stderr
    assert "missing required field _currency" in result.stderr


def test_a_bad_token_says_401_and_hints_at_the_region(
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
) -> None:
    sandbox = start_sandbox(SandboxConfig(tokens=frozenset({"right"})))
    result = cli(sandbox.url, "planhat", "companies", "list", token="wrong")
    assert result.exit_code == 1
    assert "401" in result.stderr
    assert "wrong region" in result.stderr
    assert "wrong" not in result.stderr.replace("wrong region", "")  # the token isn't echoed
    assert ok_json(cli(sandbox.url, "planhat", "companies", "list", token="right")) == []


def test_no_token_for_a_remote_planhat_is_a_clear_error() -> None:
    result = cli("https://api.planhat.com", "planhat", "companies", "list")
    assert result.exit_code == 2
    assert "PLANHAT_API_TOKEN is not set" in result.stderr


def test_an_upsert_with_a_rejected_record_prints_results_and_fails(
    sandbox: BackgroundSandbox,
) -> None:
    batch = [{"sourceId": "ok", "name": "Fine"}, {"sourceId": "bad"}]
    result = cli(sandbox.url, "planhat", "companies", "upsert", "--data", json.dumps(batch))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["summary"] == {"created": 1, "rejected": 1}
    assert "missing required field name" in report["results"][1]["message"]


def test_an_action_that_needs_an_id_says_so(sandbox: BackgroundSandbox) -> None:
    result = cli(sandbox.url, "planhat", "companies", "get")
    assert result.exit_code == 2
    assert "needs an ID" in result.stderr


def _command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("planhat-sync")), *args]


def test_the_readme_flow_sandbox_in_one_terminal_planhat_in_another() -> None:
    port = free_port_pair()
    server = subprocess.Popen(
        _command("sandbox", "--port", str(port)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                stand_in_http.get(f"http://127.0.0.1:{port}/_sandbox/stats").raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.1)
        env = {**os.environ, "PLANHAT_BASE_URL": f"http://127.0.0.1:{port}"}
        env.pop("PLANHAT_API_TOKEN", None)
        listed = subprocess.run(
            _command("planhat", "licenses", "list"),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == []
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_dev_shows_the_flow_on_embedded_defaults(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANHAT_", "DATABASE_"))}
    env.pop("STANDARD_WEBHOOK_SECRET", None)
    data = tmp_path / "data"
    args = ["dev", "--no-serve", "--port", str(free_port_pair()), "--data-dir", str(data)]
    # umask 022, the usual default: what dev keeps must be private by its own doing
    first = subprocess.run(
        _command(*args), env=env, capture_output=True, text=True, check=False, umask=0o022
    )
    assert first.returncode == 0, first.stderr
    assert "Sent 5 signed events to the receiver: 5 accepted" in first.stdout
    assert "Pro  mrr 590 USD" in first.stdout  # two versions coalesced, the newest won
    assert "Its secret:                       whsec_" in first.stdout
    # and the other way: a license edited in Planhat came back out at the outbound URL
    assert "sends the change back out, signed: POST /_dev/outbound" in first.stdout
    assert "'fields': {'mrr': 109}" in first.stdout  # 99 + 10, and only what changed
    # a restart keeps everything: the same events are duplicates, Planhat keeps its data
    second = subprocess.run(_command(*args), env=env, capture_output=True, text=True, check=False)
    assert "0 accepted, 5 already received before" in second.stdout
    assert "Pro  mrr 590 USD" in second.stdout
    assert "'fields': {'mrr': 119}" in second.stdout  # edited again: a new change
    kept = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
    assert set(kept) >= {"state.db", "planhat-sandbox.db", "secret.key", "standard-webhook-secret"}
    assert set(kept.values()) == {0o600}, kept  # -wal and -shm too, when they are left
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
