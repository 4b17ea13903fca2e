"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from worker.cli import app

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OURS = {
    name: s for name, s in COMPOSE["services"].items() if s.get("image") == "planhat-sync:local"
}


def test_compose_has_the_services_of_a_production_deployment() -> None:
    assert set(COMPOSE["services"]) == {"redis", "postgres", "web", "worker", "beat", "sandbox"}
    assert set(OURS) == {"web", "worker", "beat", "sandbox"}
    assert COMPOSE["services"]["sandbox"]["profiles"] == ["sandbox"]
    assert COMPOSE["services"]["beat"]["deploy"]["replicas"] == 1
    assert "ports" not in COMPOSE["services"]["worker"]  # so --scale worker=N works
    for name in ("redis", "postgres", "web", "worker", "sandbox"):
        assert "healthcheck" in COMPOSE["services"][name], name


@pytest.mark.parametrize("service", sorted(OURS))
def test_every_service_command_is_a_real_cli_command(service: str) -> None:
    program, name, *args = OURS[service]["command"]
    assert program == "planhat-sync"
    group: Any = typer.main.get_command(app)
    command = group.get_command(group.make_context("planhat-sync", [name]), name)
    assert command is not None, f"{service}: planhat-sync has no command {name!r}"
    # parses the options exactly as the CLI would: an unknown option or bad value raises
    context = command.make_context(name, list(args))
    assert context.params


def test_the_image_installs_the_package_and_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install ." in dockerfile
    for folder in ("connectors", "state", "worker"):
        assert f"COPY {folder} ./{folder}" in dockerfile
    assert 'CMD ["planhat-sync", "web"' in dockerfile
