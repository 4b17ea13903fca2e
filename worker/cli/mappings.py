"""``planhat-sync connections mapping add|list|remove`` and ``planhat-sync planhat
customfields``: a connection's custom field rules, checked against its sources and its
Planhat tenant when added (connectors/custom_fields/)."""

from __future__ import annotations

import json
import os
from typing import Annotated, NoReturn

import typer

from connectors.custom_fields.planhat_fields import by_model, check_in_planhat, tenant_fields
from connectors.custom_fields.rules import Rule, RuleError, check_with_source, new_rule, rules_of
from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import PlanhatError
from connectors.sources import SOURCES
from state.connections import (
    Connections,
    LockedConnectionError,
    Tenant,
    change_options,
    is_stored,
)
from state.crypto import SecretKeyError, secret_box
from state.db import make_engine, migrate
from state.location import missing_database
from worker.cli.startup import existing_database
from worker.runtime.settings import MAPPINGS_FILE, MissingTokenError, Settings, env_options

mapping_app = typer.Typer(
    no_args_is_help=True,
    help="Custom field rules: a source field → a Planhat model's custom field (README).",
)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _tenant(settings: Settings, name: str) -> Tenant:
    """A connection, stored or ``default`` (from the environment); one line if none."""
    database_url = existing_database(settings)
    migrate(database_url)
    try:
        box = secret_box()
    except SecretKeyError as error:
        _fail(str(error))
    connections = Connections(
        make_engine(database_url), box=lambda: box, default=settings.default_tenant
    )
    try:
        tenant = connections.get(name)
    except LockedConnectionError as error:
        _fail(str(error))
    if tenant is None:
        _fail(f"no connection named {name!r} (planhat-sync connections list)")
    return tenant


def _planhat(settings: Settings, tenant: Tenant) -> PlanhatClient:
    token = tenant.planhat_token
    if not token:  # default: the environment's, or the local sandbox's
        try:
            token = settings.planhat_token()
        except MissingTokenError as error:
            _fail(str(error))
    return PlanhatClient(token, base_url=tenant.planhat_base_url)


@mapping_app.command("add")
def mapping_add(
    connection: Annotated[str, typer.Argument(help="The connection (tenant).")],
    source: Annotated[str, typer.Argument(help="A source that offers fields (README).")],
    path: Annotated[str, typer.Argument(help="The source field: customer.metadata.segment.")],
    target: Annotated[str, typer.Argument(help="The Planhat field: companies.custom.Segment.")],
    kind: Annotated[
        str, typer.Option("--type", help="text, number, date or list (Planhat's field type).")
    ] = "text",
    create: Annotated[
        bool, typer.Option("--create", help="Create the field in Planhat when it has none.")
    ] = False,
) -> None:
    """Add a rule, once its source offers the path, the type fits, and Planhat has the field
    (or ``--create`` made it). A stored connection only: ``default`` reads its rules from
    PLANHAT_SYNC_MAPPINGS_FILE."""
    settings = Settings()
    try:
        rule = new_rule(source, path, target, kind)
        check_with_source(rule, SOURCES.get(source))
    except RuleError as error:
        _fail(f"refused: {error}")
    if connection == "default" and not _stored(settings, connection):  # the environment's
        _fail(f"refused: the default connection's rules are in {MAPPINGS_FILE} (README)")
    tenant = _tenant(settings, connection)
    engine = make_engine(existing_database(settings))
    try:
        with _planhat(settings, tenant) as planhat:
            said = check_in_planhat(planhat, rule, create=create)
    except RuleError as error:
        _fail(f"refused: {error}")
    except PlanhatError as error:
        _fail(f"could not read Planhat's custom fields: {error}", 1)
    key, value = rule.option
    replaced: list[str] = []

    def with_rule(options: dict[str, str]) -> dict[str, str]:
        if options.get(key, value) != value:  # one rule per source and field: the new one
            replaced.append(options[key])
        return {**options, key: value}

    change_options(engine, connection, with_rule)
    verb = "replaced the rule for" if replaced else "added"
    typer.echo(f"{said}; {verb} {rule.describe()} in {connection}")


def _stored(settings: Settings, name: str) -> bool:
    if missing_database(settings.database_url) is not None:
        return False
    migrate(settings.database_url)
    return is_stored(make_engine(settings.database_url), name)


@mapping_app.command("list")
def mapping_list(connection: Annotated[str, typer.Argument(help="The connection.")]) -> None:
    """The connection's rules, one a line: ``source: path -> model.custom.Name (type)``."""
    settings = Settings()
    if connection == "default" and os.environ.get(MAPPINGS_FILE):
        options = env_options()
    else:
        options = dict(_tenant(settings, connection).options)
    for rule in rules_of(options):
        typer.echo(rule.describe())


@mapping_app.command("remove")
def mapping_remove(
    connection: Annotated[str, typer.Argument(help="The connection.")],
    source: Annotated[str, typer.Argument(help="The rule's source.")],
    target: Annotated[str, typer.Argument(help="The rule's Planhat field: companies.custom.X")],
) -> None:
    """Remove a rule. Planhat keeps the field and the values written to it."""
    settings = Settings()
    engine = make_engine(existing_database(settings))
    removed: list[Rule] = []

    def without(options: dict[str, str]) -> dict[str, str]:
        for rule in rules_of(options, source):
            if rule.target == target:
                removed.append(rule)
                options.pop(rule.option[0])
        return options

    try:
        change_options(engine, connection, without)
    except LookupError as error:
        _fail(str(error.args[0]), 1)
    if not removed:
        _fail(f"{connection} has no {source} rule for {target}", 1)
    typer.echo(f"removed {removed[0].describe()} from {connection}")


def list_custom_fields(settings: Settings) -> None:
    """``planhat customfields``: the tenant's custom fields per model, as JSON."""
    try:
        with PlanhatClient(settings.planhat_token(), base_url=settings.planhat_base_url) as client:
            fields = tenant_fields(client)
    except MissingTokenError as error:
        _fail(str(error))
    except PlanhatError as error:
        _fail(f"Planhat answered {error}", 1)
    typer.echo(json.dumps(by_model(fields), indent=2, ensure_ascii=False))
