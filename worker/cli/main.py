"""The ``planhat-sync`` command line (typer)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import uvicorn

from connectors.intercom.sandbox.cli import intercom_sandbox
from connectors.planhat.bulk import SUCCESSES, count_outcomes
from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import PlanhatError
from connectors.planhat.models import UnknownModelError, UnsupportedOperationError, model_spec
from connectors.planhat.regions import check_token
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import serve
from connectors.zendesk.sandbox import ZendeskConfig
from connectors.zendesk.sandbox import create_app as create_zendesk_app
from state.location import DATA_DIR_ENV, DEFAULT_DATA_DIR
from worker.cli import dev as embedded
from worker.cli import operate, receive, send
from worker.cli.backfill import backfill_command
from worker.cli.errors import OneLineErrors
from worker.cli.keys import keys_app
from worker.cli.mappings import list_custom_fields
from worker.cli.mcp import mcp_command
from worker.cli.startup import checked_settings
from worker.cli.status import status_command
from worker.runtime import logs
from worker.runtime.settings import MissingTokenError, Settings

app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    help="Keep Planhat in sync with the systems your company already runs.",
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"planhat-sync {package_version('planhat-sync')}")
        raise typer.Exit


@app.callback()
def global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error, not one line.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Keep Planhat in sync with the systems your company already runs.

    State: DATABASE_URL, else .planhat-sync/state.db here, where `dev` keeps it
    (PLANHAT_SYNC_DATA_DIR moves that folder); the secret key: PLANHAT_SYNC_SECRET_KEY,
    else dev's .planhat-sync/secret.key."""


class Action(StrEnum):
    LIST = "list"
    GET = "get"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UPSERT = "upsert"


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _read_data(data: str | None) -> Any:
    """``--data`` is JSON, ``@FILE`` or ``@-`` (standard input)."""
    if data is None:
        _fail("this action needs --data JSON (or --data @FILE)", 2)
    text = data
    if data.startswith("@"):
        source = data[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
        except OSError as error:
            _fail(f"cannot read --data file {source!r}: {error.strerror}", 2)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        _fail(f"invalid JSON in --data: {error}", 2)


@contextmanager
def _planhat_errors() -> Iterator[None]:
    """Every failure of a Planhat command becomes one clear line and a non-zero exit."""
    try:
        yield
    except (UnknownModelError, UnsupportedOperationError, MissingTokenError) as error:
        _fail(str(error.args[0]), 2)
    except PlanhatError as error:
        _fail(f"Planhat answered {error}")


@app.command()
def planhat(
    model: Annotated[
        str,
        typer.Argument(help="The Planhat model, e.g. licenses, companies; or check."),
    ],
    action: Annotated[Action | None, typer.Argument(help="What to do.")] = None,
    record_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="An _id, extid-<externalId> or srcid-<sourceId>."),
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="JSON for create/update/upsert, or @FILE, or @-.")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="list: one page of this size (at most 2,000; 5,000 companies)."),
    ] = None,
    offset: Annotated[int, typer.Option(help="list: skip this many records.")] = 0,
    sort: Annotated[str | None, typer.Option(help="list: field, or -field.")] = None,
    select: Annotated[str | None, typer.Option(help="list: fields, comma-separated.")] = None,
    company: Annotated[str | None, typer.Option(help="list: company ids, comma-separated.")] = None,
) -> None:
    """Any Planhat API operation from the shell; JSON out. ``planhat check`` checks the
    token instead: which region it belongs to, and whose it is; ``planhat customfields``
    lists the tenant's custom fields per model.

    Reads PLANHAT_API_TOKEN and PLANHAT_BASE_URL (default https://api.planhat.com).
    """
    settings = Settings()
    logs.configure(settings.planhat_sync_log_level, settings.planhat_sync_log_format)
    if model == CHECK:
        if action is not None or record_id is not None or data is not None:
            _fail("check takes no other arguments", 2)
        _check(settings)
        return
    if model == "customfields" and action is None:  # the tenant's, per model
        list_custom_fields(settings)
        return
    with _planhat_errors():
        model_spec(model)  # an unknown model fails before anything else
        if action is None:
            _fail(f"an ACTION is needed: {', '.join(a.value for a in Action)}", 2)
        needs_id = action in (Action.GET, Action.UPDATE, Action.DELETE)
        if needs_id and not record_id:
            _fail(f"{action} needs an ID (_id, extid-… or srcid-…)", 2)
        payload = (
            _read_data(data) if action in (Action.CREATE, Action.UPDATE, Action.UPSERT) else None
        )
        client = PlanhatClient(settings.planhat_token(), base_url=settings.planhat_base_url)
        with client:
            run: dict[Action, Callable[[], Any]] = {
                Action.LIST: lambda: _list(client, model, limit, offset, sort, select, company),
                Action.GET: lambda: client.get(model, record_id or ""),
                Action.CREATE: lambda: client.create(model, _object(payload)),
                Action.UPDATE: lambda: client.update(model, record_id or "", _object(payload)),
                Action.DELETE: lambda: client.delete(model, record_id or ""),
                Action.UPSERT: lambda: _upsert(client, model, payload),
            }
            _print_json(run[action]())


CHECK = "check"  # ``planhat check``: not a model name


def _check(settings: Settings) -> None:
    """Verify the token against ``/myprofile``: one line, exit 1 when it is refused."""
    base_url = settings.planhat_base_url
    with _planhat_errors():
        token = settings.planhat_token()
        try:
            result = check_token(token, base_url)
        except PlanhatError as error:
            _fail(f"could not check the token at {base_url}: {error}")
    if not result.ok:
        _fail(result.line())
    typer.echo(result.line())


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        _fail("--data must be a JSON object for this action", 2)
    return payload


def _list(
    client: PlanhatClient,
    model: str,
    limit: int | None,
    offset: int,
    sort: str | None,
    select: str | None,
    company: str | None,
) -> list[dict[str, Any]]:
    fields = select.split(",") if select else None
    companies = company.split(",") if company else None
    if limit is not None or offset:
        return client.list_page(
            model, limit=limit, offset=offset, sort=sort, select=fields, company_ids=companies
        )
    return list(client.list(model, sort=sort, select=fields, company_ids=companies))


def _upsert(client: PlanhatClient, model: str, payload: Any) -> dict[str, Any]:
    records = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(record, dict) for record in records):
        _fail("--data must be a JSON object or an array of objects for upsert", 2)
    results = client.bulk_upsert(model, records)
    report = {"summary": count_outcomes(results), "results": [r.as_dict() for r in results]}
    if any(result.outcome not in SUCCESSES for result in results):
        _print_json(report)
        _fail("some records were not written (see results)")
    return report


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8766,
    db: Annotated[Path | None, typer.Option(help="Keep the data in this SQLite file.")] = None,
    token: Annotated[
        list[str] | None,
        typer.Option(help="Accept only this bearer token (repeatable). Default: any."),
    ] = None,
    rate_per_minute: Annotated[float, typer.Option(help="Sustained requests/min per token.")] = 200,
    burst: Annotated[int, typer.Option(help="Requests a token may make at once.")] = 50,
    window: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Instead of a steady rate, --rate-per-minute calls per window of this many "
            "seconds (Planhat's resets after 60-120).",
        ),
    ] = None,
    per_second: Annotated[
        int | None, typer.Option(min=1, help="Hard limit of requests/s per token.")
    ] = 150,
    retry_after: Annotated[
        bool,
        typer.Option(
            "--retry-after/--no-retry-after",
            help="Whether a 429 says Retry-After (Planhat does not promise one).",
        ),
    ] = True,
    fail_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of requests answered 500.")
    ] = 0.0,
    latency_ms: Annotated[int, typer.Option(min=0, help="Added to every request.")] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed for fault injection.")] = None,
    automation: Annotated[
        list[str] | None,
        typer.Option(
            metavar="MODEL=URL",
            help="A Planhat Automation: POST a hint to URL on every create, update and "
            "delete of MODEL, API writes included (repeatable).",
        ),
    ] = None,
    automation_secret: Annotated[
        str | None, typer.Option(help="Sent as 'Authorization: Bearer <S>' with each hint.")
    ] = None,
    automation_drop_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of hints lost on purpose.")
    ] = 0.0,
) -> None:
    """Serve a faithful stand-in for the Planhat API (in memory, or --db FILE)."""
    automations: dict[str, str] = {}
    for item in automation or ():
        model, sep, url = item.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            _fail(f"--automation {item!r}: expected MODEL=http(s)://…", 2)
        try:
            automations[model_spec(model).name] = url
        except UnknownModelError as error:
            _fail(f"--automation: {error.args[0]}", 2)
    config = SandboxConfig(
        tokens=frozenset(token or ()),
        rate_per_minute=rate_per_minute,
        burst=burst,
        rate_window_s=window,
        per_second=per_second,
        retry_after=retry_after,
        fail_rate=fail_rate,
        latency_ms=latency_ms,
        db_path=str(db) if db else None,
        seed=seed,
        automations=automations,
        automation_secret=automation_secret,
        automation_drop_rate=automation_drop_rate,
    )
    typer.echo(f"Planhat sandbox on http://{host}:{port}  (stats: /_sandbox/stats)")
    for model, url in automations.items():
        typer.echo(f"  automation: {model} created/updated/deleted -> POST {url}")
    typer.echo(f"  export PLANHAT_BASE_URL=http://{host}:{port}")
    serve(config, host, port)


@app.command("zendesk-sandbox")
def zendesk_sandbox(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8767,
    subdomain: Annotated[str, typer.Option(help="The account's subdomain (agent URLs).")] = (
        "sandbox"
    ),
    credential: Annotated[
        list[str] | None,
        typer.Option(metavar="EMAIL=TOKEN", help="Accept only this API token (repeatable)."),
    ] = None,
    rate_per_minute: Annotated[int, typer.Option(min=1, help="Account requests/min.")] = 700,
    export_per_minute: Annotated[
        int, typer.Option(min=1, help="Incremental export requests/min.")
    ] = 10,
    export_lag: Annotated[
        int, typer.Option(min=0, help="Seconds the export leaves out (Zendesk's: 60).")
    ] = 60,
    webhook_url: Annotated[
        str | None, typer.Option(help="POST a signed event here on every ticket change.")
    ] = None,
    webhook_secret: Annotated[
        str | None, typer.Option(help="The webhook's signing secret.")
    ] = None,
    first_id: Annotated[
        int, typer.Option(min=1, help="Ids of users, organizations and tickets start here.")
    ] = 1,
) -> None:
    """Serve a stand-in for Zendesk's REST API v2 and its event webhook (in memory)."""
    credentials = dict(item.partition("=")[::2] for item in credential or ())
    config = ZendeskConfig(
        subdomain=subdomain,
        credentials=credentials,
        rate_per_minute=rate_per_minute,
        export_per_minute=export_per_minute,
        export_lag_s=export_lag,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret or ZendeskConfig().webhook_secret,
        first_id=first_id,
    )
    typer.echo(f"Zendesk sandbox on http://{host}:{port}  (stats: /_sandbox/stats)")
    if webhook_url:
        typer.echo(f"  webhook: every ticket change -> POST {webhook_url}")
    typer.echo(f"  export ZENDESK_API_BASE=http://{host}:{port}")
    app = create_zendesk_app(config)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Receiver port; the sandbox takes the next.")] = 8765,
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar=DATA_DIR_ENV,
            help="Where state is kept (every other command looks there too).",
        ),
    ] = Path(DEFAULT_DATA_DIR),
    serve_forever: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving after the demo.")
    ] = True,
) -> None:
    """Receiver, worker and scheduler in one process: SQLite, no Redis, and the Planhat
    sandbox when no token is set. Shows the flow working."""
    settings = checked_settings()
    with _planhat_errors():
        embedded.run(settings, port=port, data_dir=data_dir, serve_forever=serve_forever)


app.command("intercom-sandbox")(intercom_sandbox)
app.command("migrate")(operate.migrate_command)
app.command("worker", context_settings=operate.PASS_THROUGH)(operate.worker_command)
app.command("beat", context_settings=operate.PASS_THROUGH)(operate.beat_command)
app.command("replay")(operate.replay_command)
app.command("backfill")(backfill_command)
app.command("prune")(operate.prune_command)
app.command("status")(status_command)
app.add_typer(operate.dlq_app, name="dlq")
app.command("web")(receive.web_command)
app.command("send")(send.send_command)
app.command("mcp")(mcp_command)
app.add_typer(receive.connections_app, name="connections")
app.add_typer(keys_app, name="keys")


def main() -> None:
    app()
