"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from connectors.source import HasApi
from connectors.sources import SOURCES
from worker.cli import app
from worker.runtime.settings import EngineSettings, Settings, WebSettings

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


class ReadNames(dict[str, str]):
    """An empty environment that notes every variable a source looks up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.read.append(key)
        return default


def settings_the_code_reads() -> set[str]:
    """Every variable of the default connection and every tuning setting, as the code
    names them: each source's webhook secret, credentials and mapping options, and the
    engine's and the receiver's settings."""
    names: set[str] = set()
    for source in SOURCES.values():
        environ = ReadNames()
        source.env_secret(environ)
        names.update(environ.read)
        names.update(option.env_name(source.name) for option in source.options)
        if isinstance(source, HasApi):
            for credential in source.credentials:
                names.update(credential.env_names(source.name))
    names.update(f"PLANHAT_SYNC_{field.upper()}" for field in EngineSettings.model_fields)
    names.update(f"PLANHAT_SYNC_WEB_{field.upper()}" for field in WebSettings.model_fields)
    return names | {field.upper() for field in Settings.model_fields}


@pytest.mark.parametrize("service", ["web", "worker", "beat"])
def test_every_option_secret_and_tuning_setting_is_passed_to_each_process(service: str) -> None:
    environment = OURS[service]["environment"]

    missing = settings_the_code_reads() - set(environment)

    assert not missing, f"{service} is not given {sorted(missing)}"
    # Passed through only when set: an empty value would override the code's default.
    assert environment["STRIPE_TRIALS"] is None
    assert environment["PLANHAT_SYNC_BATCH_SIZE"] is None


def test_the_secret_key_is_required_and_the_state_is_postgresql_and_redis() -> None:
    environment = OURS["worker"]["environment"]

    assert environment["PLANHAT_SYNC_SECRET_KEY"].startswith("${PLANHAT_SYNC_SECRET_KEY:?")
    assert environment["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert environment["DATABASE_URL"].endswith("@postgres:5432/planhat_sync")
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert OURS["worker"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_worker_health_check_pings_that_worker_not_any() -> None:
    kind, script = COMPOSE["services"]["worker"]["healthcheck"]["test"]
    command = OURS["worker"]["command"]

    assert kind == "CMD-SHELL"  # the shell expands $HOSTNAME, the container's own
    assert "inspect ping" in script
    # $$ is compose's escape for one $: the node name Celery gives a worker by default
    assert "--destination celery@$$HOSTNAME" in script
    assert not {"-n", "--hostname"} & set(command)  # so that stays its node name


def test_the_receiver_health_check_asks_whether_it_is_ready() -> None:
    [kind, *script] = COMPOSE["services"]["web"]["healthcheck"]["test"]

    assert kind == "CMD"
    assert "http://127.0.0.1:8765/readyz" in " ".join(script)
