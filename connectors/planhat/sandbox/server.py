"""Serve the sandbox over a real socket, in the foreground or on a background thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from connectors.planhat.sandbox.app import SandboxConfig, create_app


def serve(config: SandboxConfig, host: str, port: int) -> None:
    """Run until interrupted (``planhat-sync sandbox``)."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False)


class BackgroundServer:
    """An ASGI app served by uvicorn on a thread of this process; ``port=0`` picks a free
    port. ``with BackgroundServer(app) as server: server.url``"""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when
        # the listener says TCP; without it every keep-alive reply waits ~40 ms (Nagle).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class BackgroundSandbox(BackgroundServer):
    """The Planhat sandbox on a thread of this process."""

    def __init__(self, config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(create_app(config), host, port)

    def start(self) -> BackgroundSandbox:
        super().start()
        return self

    def __enter__(self) -> BackgroundSandbox:
        return self.start()
