"""``planhat-sync web --workers N``: N receiver processes, each listening on a socket of its
own bound to the same port (``SO_REUSEPORT``), so the kernel spreads connections over them.

uvicorn's own ``--workers`` shares one listening socket between its processes, and asyncio
accepts every waiting connection at once when it wakes (``BaseSelectorEventLoop.
_accept_connection`` takes up to the backlog in one go): a burst of new keep-alive
connections (a load balancer's pool, a sender's 16) lands on whichever process woke first
while the others idle. Measured with wrk's 16 connections on two processes: all 16 on one.
With a socket each, Linux hashes every new connection to one of the listening sockets
(socket(7), SO_REUSEPORT), as nginx's ``reuseport`` does.

The supervisor here is deliberately small: start the children, start again one that dies,
and on SIGTERM or SIGINT pass it on and wait. A child that cannot start (the port is held
by another program, the app cannot be built) stops them all, with uvicorn's exit status.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from typing import Any

import structlog
import uvicorn

log = structlog.get_logger(__name__)

STARTUP_FAILURE = 3  # uvicorn's exit status when a server cannot start (uvicorn.main)
STOP_WAIT = 30.0  # seconds a child has to finish its requests after SIGTERM


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that other processes may bind too (not yet listening:
    asyncio's server calls ``listen``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def serve(workers: int, **config: Any) -> None:
    """Serve ``uvicorn.Config(**config)`` in ``workers`` processes, a socket each."""
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(workers=workers, **config)
        return
    # Fail here, in one line, if the port is taken (a bound socket that never listens is
    # given no connections, so holding it while the children start changes nothing).
    probe = reuse_port_socket(config["host"], config["port"])
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start() -> BaseProcess:
        child = spawn.Process(target=_serve_one, kwargs=config, daemon=False)
        child.start()
        return child

    children = [start() for _ in range(workers)]
    probe.close()
    status = 0
    try:
        while not stopping:
            for index, child in enumerate(children):
                if child.is_alive():
                    continue
                if child.exitcode == STARTUP_FAILURE:
                    log.error("web.child_could_not_start", pid=child.pid)
                    status = STARTUP_FAILURE
                    stopping = True
                    break
                log.warning("web.child_died", pid=child.pid, exitcode=child.exitcode)
                children[index] = start()
            time.sleep(0.2)
    finally:
        _stop_all(children)
    if status:
        sys.exit(status)


def _stop_all(children: list[BaseProcess]) -> None:
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: uvicorn finishes the requests it has, then exits
    deadline = time.monotonic() + STOP_WAIT
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()


def _serve_one(**config: Any) -> None:
    try:
        sock = reuse_port_socket(config["host"], config["port"])
    except OSError as error:
        print(f"cannot listen on {config['host']}:{config['port']}: {error}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(uvicorn.Config(**config))
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)
