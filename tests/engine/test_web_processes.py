"""``planhat-sync web --workers N``: every process listens on a socket of its own
(worker/intake/processes.py), so connections opened at once are spread over them, and a
port someone else holds stops it with one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests import stand_in_http
from tests.engine.harness import RedisServer, free_port, fresh_deployment, wait_until

EXE = str(Path(sys.executable).with_name("planhat-sync"))


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry))
    return found


def _sockets_on(port: int, state: str) -> set[int]:
    """Inodes of the sockets on local ``port`` in ``state`` (/proc/net/tcp: 01 =
    ESTABLISHED, 0A = LISTEN)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == state:
            inodes.add(int(fields[9]))
    return inodes


def _sockets_of(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def test_connections_opened_at_once_are_spread_over_the_receiver_processes(
    redis_server: RedisServer,
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
) -> None:
    sandbox = start_sandbox(SandboxConfig())
    with fresh_deployment(redis_server, sandbox.url, tmp_path, env_extra={}) as system:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        system.start("web", "web", "--port", str(port), "--workers", "2")
        web = system.processes["web"].pid
        wait_until(  # both processes listening, each on a socket of its own
            lambda: len(_sockets_on(port, "0A")) == 2 and _answers(url),
            timeout=60,
            what="the receiver",
        )

        # when 16 keep-alive connections are opened at once, as a sender's pool does
        opened = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        try:
            for sock in opened:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            for sock in opened:
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            accepted = _sockets_on(port, "01")
            per_process = [len(_sockets_of(pid) & accepted) for pid in _children(web)]
        finally:
            for sock in opened:
                sock.close()

        # then every process serves some of them (all 16 on one: 2 in 65,536 by chance)
        assert sum(per_process) == 16
        assert len([n for n in per_process if n > 0]) == 2, per_process


def test_a_port_held_by_another_program_stops_web_with_one_line(
    redis_server: RedisServer,
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
) -> None:
    sandbox = start_sandbox(SandboxConfig())
    with (
        fresh_deployment(redis_server, sandbox.url, tmp_path, env_extra={}) as system,
        socket.create_server(("127.0.0.1", 0)) as taken,
    ):
        port = taken.getsockname()[1]
        done = subprocess.run(
            [EXE, "web", "--port", str(port), "--workers", "2"],
            env=system.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert done.returncode != 0
    assert "Address already in use" in done.stderr
    assert "Traceback" not in done.stderr


def _answers(url: str) -> bool:
    try:
        return stand_in_http.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
