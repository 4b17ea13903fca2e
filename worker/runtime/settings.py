"""Settings from the environment (pydantic-settings): one place that reads os.environ."""

from __future__ import annotations

import os
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.custom_fields.rules import RuleError, rules_from_file
from connectors.planhat.client import DEFAULT_BASE_URL
from connectors.sources import SOURCES, OptionError, check_options, env_api_bases, env_secrets
from state.connections import Tenant
from state.location import default_database_url
from worker.intake.limits import ReceiverLimits
from worker.intake.poll import SourceApis
from worker.pipeline.batch import FlushPolicy

# Sent when no token is set and the base URL is this machine's sandbox, which accepts any
# non-empty bearer token. Never sent anywhere else.
SANDBOX_TOKEN = "sandbox"  # noqa: S105 - not a secret: the sandbox takes any token


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    planhat_api_token: SecretStr | None = None
    planhat_base_url: str = DEFAULT_BASE_URL
    planhat_sync_log_level: str = "warning"
    # console or json (worker/runtime/logs.py checks it: a wrong one stops the process)
    planhat_sync_log_format: str = "console"
    # Unset: SQLite in the data directory, where dev keeps it (state/location.py).
    database_url: str = Field(default_factory=default_database_url)
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The status page's admin token (/ui): unset, ``web`` serves no page.
    planhat_sync_admin_token: SecretStr | None = None

    def default_tenant(self) -> Tenant:
        """The ``default`` connection, from the environment."""
        try:
            token = self.planhat_token()
        except MissingTokenError:
            token = ""  # events are still received and kept; flushes say what is missing
        return Tenant(
            name="default",
            planhat_base_url=self.planhat_base_url,
            planhat_token=token,
            # Webhook secrets, and source API credentials (<SOURCE>_<NAME>): with those,
            # beat polls the sources' events APIs and thin events are completed.
            secrets=env_secrets(os.environ),
            options=env_options(),
        )

    def admin_token(self) -> str | None:
        token = self.planhat_sync_admin_token
        return token.get_secret_value() if token and token.get_secret_value() else None

    def source_apis(self) -> SourceApis:
        """Source API base URLs set by ``<SOURCE>_API_BASE`` (local fakes in tests)."""
        return SourceApis(**env_api_bases(os.environ))

    def planhat_token(self) -> str:
        """The token to send: the configured one, or the sandbox's when talking to it."""
        if self.planhat_api_token and self.planhat_api_token.get_secret_value():
            return self.planhat_api_token.get_secret_value()
        if is_local(self.planhat_base_url):
            return SANDBOX_TOKEN
        raise MissingTokenError(
            "PLANHAT_API_TOKEN is not set. Create one in Planhat (Settings → Service "
            "Accounts), or point PLANHAT_BASE_URL at a sandbox (planhat-sync sandbox)."
        )


def env_options() -> dict[str, str]:
    """The ``default`` connection's mapping options: ``<SOURCE>_<OPTION>`` sets
    ``<source>.<option>``, for every option a source declares, and the custom field rules
    of the file PLANHAT_SYNC_MAPPINGS_FILE names. Checked here, so
    a bad value stops the process at start rather than failing events later; the error
    names the variable, and the option's help the values it accepts."""
    options: dict[str, str] = {}
    for source in SOURCES.values():
        for option in source.options:
            variable = option.env_name(source.name)
            value = os.environ.get(variable)
            if not value:
                continue
            try:
                options[f"{source.name}.{option.name}"] = option.check(source.name, value)
            except OptionError as error:
                raise OptionError(f"{variable}: {error}") from None
    if file := os.environ.get(MAPPINGS_FILE):
        try:
            options.update(rules_from_file(Path(file)))
        except RuleError as error:
            raise OptionError(f"{MAPPINGS_FILE}: {error}") from None
    check_options(options)
    return options


# The ``default`` connection's custom field rules: a TOML file (connectors/custom_fields/
# rules.py: rules_from_file). Stored connections keep theirs with their options.
MAPPINGS_FILE = "PLANHAT_SYNC_MAPPINGS_FILE"


class MissingTokenError(RuntimeError):
    pass


def is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class EngineSettings(BaseSettings):
    """How the sync engine paces itself; each is ``PLANHAT_SYNC_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="PLANHAT_SYNC_", extra="ignore")

    batch_size: int = 500  # records per Planhat bulk call (at most 5,000)
    # Seconds the oldest waiting change of a model lingers before a partial batch goes out
    # (a full batch goes at once): at steady load a change waits about this plus one call.
    flush_linger: float = Field(default=0.25, ge=0)
    # The share of rate_per_minute flushes may plan to spend; the rest is the reverse
    # path's, the polls' and the prepare reads'.
    flush_budget_share: float = Field(default=0.8, gt=0, le=1)
    # The embedded default (dev: one process) holds its flushes while webhooks arrive
    # faster than this many a second, at most embedded_burst_wait seconds: the receiver
    # answers a burst first, then one flush sends it (worker/runtime/embedded.py).
    embedded_burst_rate: float = Field(default=200.0, gt=0)
    embedded_burst_wait: float = Field(default=20.0, ge=0)
    lease_seconds: float = 120.0  # a flush holds its rows this long (a killed worker's return)
    max_attempts: int = 8  # failed sends before a record becomes a dead letter
    parent_wait_attempts: int = 5  # rejected tries while its company is not yet known
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    sweep_interval: float = 15.0  # seconds between sweeps (beat)
    poll_interval: float = 60.0  # seconds between polls of source APIs (beat)
    # Seconds a reconciliation scan of Planhat (with each poll) reads back before the
    # newest change the last scan saw: changes stored late are not missed.
    reconcile_lookback: float = Field(default=120.0, ge=0)
    lost_after: float = 120.0  # a pending event's task is presumed lost after this long
    # Ingest tasks that may run at once across all workers (Redis): a long queue starts
    # another, up to this many; more than the worker processes there are only wait.
    ingest_tasks: int = Field(default=4, ge=1)
    # Planhat allows ~200 calls/min per token with bursts of 50; we stay a little under, so
    # another client on the same token or clock skew does not push us over.
    rate_per_minute: float = 180.0
    burst: int = 40
    max_budget_wait: float = 30.0
    # The flapping guard (worker/pipeline/links.py): more turns than this between Planhat
    # and a source within flap_minutes quarantine a record, as one dead letter.
    flap_bounces: int = Field(default=6, ge=1)
    flap_minutes: float = Field(default=10.0, gt=0)
    # Days processed inbox events (raw bodies) and superseded dead letters are kept before
    # the daily prune deletes them (state/prune.py); 0 turns the daily prune off.
    retention_days: float = Field(default=30.0, ge=0)

    def flush_rate(self) -> float:
        """Flush calls a minute at most, per token."""
        return self.rate_per_minute * self.flush_budget_share

    def policy(self) -> FlushPolicy:
        return FlushPolicy(
            batch_size=self.batch_size,
            lease=self.lease_seconds,
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
            parent_wait_attempts=self.parent_wait_attempts,
            max_budget_wait=self.max_budget_wait,
            flap_bounces=self.flap_bounces,
            flap_minutes=self.flap_minutes,
        )


DEFAULTS = ReceiverLimits()


class WebSettings(BaseSettings):
    """The receiver's limits (``worker.intake.limits``); each is ``PLANHAT_SYNC_WEB_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="PLANHAT_SYNC_WEB_", extra="ignore")

    max_header_bytes: int = Field(default=DEFAULTS.max_header_bytes, ge=1024)  # past it: 431
    header_timeout: float = Field(default=DEFAULTS.header_timeout, gt=0)  # seconds; past it: 408
    body_timeout: float = Field(default=DEFAULTS.body_timeout, gt=0)  # seconds; past it: 408
    max_in_flight: int = Field(default=DEFAULTS.max_in_flight, ge=1)  # per process; past it: 503
    database_wait: float = Field(default=DEFAULTS.database_wait, gt=0)  # seconds; past it: 503
    group_window: float = Field(default=DEFAULTS.group_window, ge=0, le=0.1)  # seconds
    group_size: int = Field(default=DEFAULTS.group_size, ge=1, le=1000)  # events a commit

    def limits(self) -> ReceiverLimits:
        return ReceiverLimits(
            max_header_bytes=self.max_header_bytes,
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
            max_in_flight=self.max_in_flight,
            database_wait=self.database_wait,
            group_window=self.group_window,
            group_size=self.group_size,
        )
