"""The MCP server over streamable HTTP, behind a bearer token, for the web process.

Why a small ASGI gate and not the SDK's ``TokenVerifier``: the SDK's verifier comes with
OAuth 2.1 resource-server settings (``AuthSettings(issuer_url, resource_server_url)``,
both required) and publishes RFC 9728 metadata naming an authorization server; we have
none, only one shared secret (PLANHAT_SYNC_MCP_TOKEN), so a client would be sent looking
for OAuth endpoints that do not exist. The gate compares the ``Authorization: Bearer``
header in constant time and answers 401 with ``WWW-Authenticate: Bearer`` otherwise, as
the status page's token gate does for its cookie.

Stateless and JSON answers (``stateless_http``, ``json_response``): ``web`` may run several
processes behind one port, and no request may depend on a session kept in another one.
"""

from __future__ import annotations

import hashlib
import hmac
from contextlib import AbstractAsyncContextManager

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

MCP_PATH = "/mcp"
REFUSED = (
    "this MCP endpoint needs 'Authorization: Bearer <PLANHAT_SYNC_MCP_TOKEN>' "
    "(missing or wrong token)\n"
)


class BearerGate:
    """Lets a request through only with ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("the MCP endpoint needs a bearer token")
        self._app = app
        self._digest = hashlib.sha256(token.encode()).digest()

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, given = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
                    return False
                # Digests of equal length: compare_digest leaks nothing about the token.
                return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(),
                                           self._digest)  # fmt: skip
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            refused = PlainTextResponse(
                REFUSED, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="mcp"'}
            )
            await refused(scope, receive, send)
            return
        await self._app(scope, receive, send)


def mount_mcp(web: Starlette, server: MCPServer, token: str) -> AbstractAsyncContextManager[None]:
    """Serve ``server`` at ``/mcp`` on ``web`` behind ``token``. The returned context is
    the server's session manager: the host app's lifespan must enter it."""
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        # The SDK's DNS-rebinding check allows only localhost Host headers; behind a
        # real hostname it would refuse every call. A rebinding page in a browser has no
        # bearer token, and the gate refuses it first.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    web.router.routes.append(Route(MCP_PATH, endpoint=BearerGate(app, token)))
    return server.session_manager.run()
