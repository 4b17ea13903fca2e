"""``planhat-sync dev`` and the status page: a token of its own kept beside its other files
(private), the environment's when set, and a login link printed at start that works."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port_pair
from worker.cli.dev import admin_token
from worker.runtime.settings import Settings


def test_dev_keeps_a_private_admin_token_unless_one_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLANHAT_SYNC_ADMIN_TOKEN", raising=False)

    token = admin_token(Settings(), tmp_path)

    assert len(token) >= 24
    assert admin_token(Settings(), tmp_path) == token  # kept, not made again
    assert stat.S_IMODE((tmp_path / "admin-token").stat().st_mode) == 0o600
    monkeypatch.setenv("PLANHAT_SYNC_ADMIN_TOKEN", "from-the-environment")
    assert admin_token(Settings(), tmp_path) == "from-the-environment"


def test_dev_prints_a_login_link_that_opens_the_status_page(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("planhat-sync"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANHAT_", "DATABASE_"))}
    port = free_port_pair()
    process = subprocess.Popen(
        [exe, "dev", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        link = ""
        deadline = time.monotonic() + 60
        while not link and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "dev stopped before printing its login link"
            if line.startswith("Status page: "):
                link = line.removeprefix("Status page: ").strip()
        kept = (tmp_path / "admin-token").read_text().strip()
        assert link == f"http://127.0.0.1:{port}/ui/login?token={kept}"

        with httpx.Client(follow_redirects=True, timeout=10) as browser:
            page = browser.get(link)
            assert page.status_code == 200
            assert "<title>status · planhat-sync</title>" in page.text
            # and once dev's demo events arrive, the default connection is on it
            while 'data-connection="default"' not in page.text:
                assert time.monotonic() < deadline, "the demo's events never showed"
                time.sleep(0.5)
                page = browser.get(f"http://127.0.0.1:{port}/ui")
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: how dev is stopped
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
