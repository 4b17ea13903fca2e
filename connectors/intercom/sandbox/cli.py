"""``planhat-sync intercom-sandbox``: serve the Intercom stand-in (registered in
``worker/cli/main.py``, as ``zendesk-sandbox`` is)."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from connectors.intercom.sandbox.app import IntercomConfig, create_app


def intercom_sandbox(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8768,
    token: Annotated[
        list[str] | None, typer.Option(help="Accept only this access token (repeatable).")
    ] = None,
    rate_per_window: Annotated[
        int, typer.Option(min=1, help="Requests per 10-second window (Intercom: 1666).")
    ] = 1666,
    webhook_url: Annotated[
        str | None, typer.Option(help="POST a signed notification here on every ticket change.")
    ] = None,
    client_secret: Annotated[
        str | None, typer.Option(help="The app's client secret (signs notifications).")
    ] = None,
    app_code: Annotated[
        list[str] | None,
        typer.Option(
            help="TOKEN=CODE: that token is another app's, whose package code is CODE "
            "(repeatable); any other token is planhat-sync's."
        ),
    ] = None,
) -> None:
    """Serve a stand-in for Intercom's tickets API and its webhooks (in memory)."""
    config = IntercomConfig(
        tokens=frozenset(token or ()),
        rate_per_window=rate_per_window,
        webhook_url=webhook_url,
        client_secret=client_secret or IntercomConfig().client_secret,
        app_codes=dict(_pair(item) for item in app_code or ()),
    )
    typer.echo(f"Intercom sandbox on http://{host}:{port}  (stats: /_sandbox/stats)")
    if webhook_url:
        typer.echo(f"  webhook: every ticket change -> POST {webhook_url}")
    typer.echo(f"  export INTERCOM_API_BASE=http://{host}:{port}")
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False)


def _pair(item: str) -> tuple[str, str]:
    token, sep, code = item.partition("=")
    if not (sep and token and code):
        raise typer.BadParameter(f"--app-code takes TOKEN=CODE, not {item!r}")
    return token, code
