"""``planhat-sync send``: sign a body as a source's sender would, and POST it.

So each source can be tried locally, against ``dev`` or ``web``: ``send --source stripe
@event.json`` signs the file as Stripe does (``connectors/senders.py``) with the secret
the receiver will check it with, the connection's own. That secret is ``--secret``, or
the connection's: a stored connection's (opened with the secret key), else for
``default`` the environment's (``STRIPE_WEBHOOK_SECRET`` …) and, for ``standard``, the one
``dev`` generated in its data directory.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from connectors.senders import SIGNERS, signed_for
from state.connections import Connections
from state.crypto import SecretKeyError, secret_box
from state.db import make_engine
from state.location import data_dir, missing_database
from worker.cli.startup import fail
from worker.runtime.settings import Settings

DEFAULT_RECEIVER = "http://127.0.0.1:8765"
DEV_STANDARD_SECRET = "standard-webhook-secret"  # noqa: S105 - dev's file of it, by name


def send_command(
    body: Annotated[
        str | None,
        typer.Argument(metavar="[BODY]", help="The body: JSON, @FILE, or @- (standard input)."),
    ] = None,
    source: Annotated[
        str, typer.Option(help=f"Sign as this source does: {', '.join(SIGNERS)}.")
    ] = "standard",
    connection: Annotated[str, typer.Option(help="The connection whose secret signs.")] = (
        "default"
    ),
    data: Annotated[str | None, typer.Option(help="The body, as BODY (older spelling).")] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help=f"The webhook URL. Default: {DEFAULT_RECEIVER}/webhooks/CONNECTION/SOURCE."
        ),
    ] = None,
    secret: Annotated[
        str | None, typer.Option(help="Sign with this secret instead of the connection's.")
    ] = None,
) -> None:
    """Sign a body as SOURCE signs its webhooks and send it, as that system would."""
    if source not in SIGNERS:
        fail(f"--source {source!r}: one of {', '.join(SIGNERS)}")
    if (body is None) == (data is None):
        fail("give the body once: BODY (JSON, @FILE or @-), or --data")
    raw = _read_body(body or data or "")
    key = secret or _connection_secret(source, connection)
    try:
        headers = signed_for(source, key, raw, time.time())
    except ValueError as error:
        fail(f"the {source} secret: {error}")
    target = url or f"{DEFAULT_RECEIVER}/webhooks/{connection}/{source}"
    try:
        answer = httpx.post(target, content=raw, headers=headers, timeout=10)
    except httpx.TransportError as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        fail(f"cannot send to {target}: {reason} (is planhat-sync dev or web running?)", 1)
    typer.echo(f"{answer.status_code} {answer.text}")
    if answer.status_code >= 300:
        raise typer.Exit(1)


def _read_body(given: str) -> bytes:
    if not given.startswith("@"):
        return given.encode()
    name = given[1:]
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as error:
        fail(f"cannot read {name}: {error.strerror or error}")


def _connection_secret(source: str, connection: str) -> str:
    """The secret the receiver checks ``source``'s webhooks on ``connection`` with."""
    settings = Settings()
    tenant = None
    if missing_database(settings.database_url) is None:  # never create one to look
        engine = make_engine(settings.database_url)
        try:
            tenant = Connections(engine, box=secret_box, default=settings.default_tenant).get(
                connection
            )
        except SecretKeyError as error:
            fail(f"connection {connection!r}: {error}")
        finally:
            engine.dispose()
    elif connection == "default":
        tenant = settings.default_tenant()
    found = tenant.secrets.get(source) if tenant is not None else None
    kept = data_dir() / DEV_STANDARD_SECRET
    if not found and source == "standard" and connection == "default" and kept.is_file():
        found = kept.read_text().strip()
    if tenant is None:
        fail(f"no connection {connection!r} here (connections list shows them); or give --secret")
    if not found:
        fail(
            f"connection {connection!r} has no {source} secret: give --secret, or set it "
            f"(the environment's for 'default', --secret {source}=… on connections add)"
        )
    return found
