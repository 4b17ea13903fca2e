"""Unauthenticated clients cannot tie up a real ``planhat-sync web``: an oversized request
head is refused without being buffered, idle and slow sockets are closed, and webhooks
past the per-process limit are a 503. Raw sockets on 127.0.0.1 only; every wait has a
deadline."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests import stand_in_http
from tests.engine.harness import free_port, require_services, wait_until
from tests.engine.services import TEST_REDIS_URL

SECRET = "whsec_" + base64.b64encode(b"receiver-limits-secret-0").decode()
MAX_HEADER_BYTES = 8192
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_IN_FLIGHT = 4
MARGIN = 2.0  # seconds a timeout may take beyond its setting on a busy 2-core machine
WEBHOOK = b"POST /webhooks/default/standard HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@dataclass
class Web:
    process: subprocess.Popen[bytes]
    port: int

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    """``planhat-sync web`` (one process) with small limits, on SQLite."""
    require_services()
    folder = tmp_path_factory.mktemp("limits")
    port = free_port()
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PLANHAT", "CELERY"))}
    env = {
        **keep,
        "DATABASE_URL": f"sqlite:///{folder}/state.db",
        "REDIS_URL": TEST_REDIS_URL,  # never written to: nothing here is stored
        "PLANHAT_SYNC_SECRET_KEY": Fernet.generate_key().decode(),
        "PLANHAT_BASE_URL": "http://127.0.0.1:9",
        "STANDARD_WEBHOOK_SECRET": SECRET,
        "PLANHAT_SYNC_WEB_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "PLANHAT_SYNC_WEB_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "PLANHAT_SYNC_WEB_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "PLANHAT_SYNC_WEB_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
    }
    command = [str(Path(sys.executable).with_name("planhat-sync")), "web", "--port", str(port)]
    log = (folder / "web.log").open("wb")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), timeout=30, what="planhat-sync web to answer")
        yield Web(process, port)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def _answers(url: str) -> bool:
    try:
        return stand_in_http.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """What the server sends until it closes the connection; AssertionError at the
    deadline if it has not."""
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"still open at the deadline; got {received[:200]!r}")


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def test_a_32_mib_header_is_refused_431_without_being_buffered(web: Web) -> None:
    before = web.rss_kib()
    sent = 0
    answers = []
    for _ in range(4):  # four at once, as in the issue (124 MiB grew to 319 MiB)
        sock = web.connect()
        sock.sendall(WEBHOOK + b"X-Padding: ")
        chunk = b"a" * 65536
        try:
            for _ in range(32 * 16):  # 32 MiB, unless the server closes first
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answers.append(read_until_closed(sock, time.monotonic() + 5))
        sock.close()
    grew_kib = web.rss_kib() - before

    assert all(status(answer) in (431, 0) for answer in answers), answers
    assert any(status(answer) == 431 for answer in answers)
    assert b"request head is over 8192 bytes" in b"".join(answers)
    assert sent < 4 * 8 * 1024 * 1024  # cut off long before 4 x 32 MiB went through
    assert grew_kib < 16 * 1024, f"the server grew by {grew_kib} KiB"


def test_a_header_just_over_the_limit_in_one_piece_is_431(web: Web) -> None:
    sock = web.connect()
    head = WEBHOOK + b"X-Padding: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n"
    sock.sendall(head)

    answer = read_until_closed(sock, time.monotonic() + 5)

    assert status(answer) == 431


def test_an_idle_socket_is_closed_after_the_header_timeout(web: Web) -> None:
    sock = web.connect()
    opened = time.monotonic()

    assert read_until_closed(sock, opened + HEADER_TIMEOUT + MARGIN) == b""
    assert time.monotonic() - opened >= HEADER_TIMEOUT * 0.9


def test_a_head_sent_a_byte_at_a_time_is_408_after_the_header_timeout(web: Web) -> None:
    sock = web.connect()
    opened = time.monotonic()
    for byte in WEBHOOK:  # slower than the timeout allows: 1 byte every 50 ms
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        time.sleep(0.05)
        if time.monotonic() - opened > HEADER_TIMEOUT + MARGIN:
            break

    answer = read_until_closed(sock, opened + HEADER_TIMEOUT + MARGIN)

    assert status(answer) == 408
    assert b"did not arrive within 1 s" in answer


def test_a_slow_body_is_408_after_the_body_timeout(web: Web) -> None:
    sock = web.connect()
    sock.sendall(WEBHOOK + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    started = time.monotonic()

    answer = read_until_closed(sock, started + BODY_TIMEOUT + MARGIN)

    assert status(answer) == 408
    assert b"body did not arrive within 1 s" in answer


def test_150_idle_sockets_are_all_closed_and_the_receiver_still_answers(web: Web) -> None:
    sockets = [web.connect() for _ in range(150)]
    deadline = time.monotonic() + HEADER_TIMEOUT + MARGIN + 1

    closed = sum(read_until_closed(sock, deadline) == b"" for sock in sockets)
    for sock in sockets:
        sock.close()

    assert closed == 150
    assert stand_in_http.get(f"http://127.0.0.1:{web.port}/healthz", timeout=5).status_code == 200


def test_webhooks_past_the_in_flight_limit_are_503_with_retry_after(web: Web) -> None:
    # given MAX_IN_FLIGHT webhooks whose bodies are still arriving (in progress)
    slow = []
    for _ in range(MAX_IN_FLIGHT):
        sock = web.connect()
        sock.sendall(WEBHOOK + b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n{")
        slow.append(sock)
    time.sleep(0.3)  # their heads are read, and the app is waiting for their bodies

    # when one more arrives
    url = f"http://127.0.0.1:{web.port}/webhooks/default/standard"
    busy = stand_in_http.post(url, content=b"{}", headers={"content-type": "application/json"})
    for sock in slow:
        read_until_closed(sock, time.monotonic() + BODY_TIMEOUT + MARGIN)  # their 408
        sock.close()
    after = stand_in_http.post(url, content=b"{}", headers={"content-type": "application/json"})

    # then it was refused at once, saying when to come back; once they are gone, not
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert "webhooks at once" in busy.json()["error"]
    assert after.status_code == 401  # unsigned: past the limit, to the signature check
