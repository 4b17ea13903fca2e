"""The status page in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
log in, see the tenant's counts and a chart, open a dead letter, fix its cause, retry it,
and see it land in the Planhat sandbox. Takes a screenshot of the page; with
``PLANHAT_SYNC_SCREENSHOT=docs/status-page.png`` it is the README's (saved there), else
it goes to the test's temporary directory, so a test run leaves the tree as it was.

The product runs embedded, as ``dev`` runs it: the receiver with the page mounted, on a
real socket, the worker threads, SQLite, and the sandbox standing in for Planhat.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox, BackgroundServer
from connectors.standard.verify import signed_headers
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import migrate
from tests import stand_in_http
from tests.conftest import drain_embedded
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.receiver import create_web_app
from worker.ops.ui import StatusPage, mount_status_page, waker
from worker.runtime.embedded import LocalDispatcher, embedded_runtime
from worker.runtime.ratelimit import LocalRateLimiter
from worker.runtime.settings import EngineSettings

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + base64.b64encode(b"browser-test-secret-0000").decode()
ADMIN = "admin-token-for-the-browser-test"

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
    reason=f"no {CHROMIUM}: apt-get install chromium (CI installs it in .ci/run)",
)


@dataclass
class Product:
    url: str
    planhat: BackgroundSandbox
    engine: Engine
    dispatcher: LocalDispatcher

    def send(self, event_id: str, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        headers = signed_headers(SECRET, event_id, body, int(time.time()))
        answer = stand_in_http.post(
            f"{self.url}/webhooks/default/standard", content=body, headers=headers
        )
        assert answer.status_code == 202, answer.text

    def drain(self) -> None:
        drain_embedded(self.engine, self.dispatcher, timeout=20)

    def faults(self, faults: dict[str, Any]) -> None:
        stand_in_http.post(f"{self.planhat.url}/_sandbox/faults", json=faults).raise_for_status()


@pytest.fixture
def product(tmp_path: Path) -> Iterator[Product]:
    planhat = BackgroundSandbox(SandboxConfig(rate_per_minute=1e9, burst=10**6)).start()
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    box = SecretBox(Fernet.generate_key().decode())
    tenant = Tenant(name="default", planhat_base_url=planhat.url, planhat_token="token",
                    secrets={"standard": SECRET})  # fmt: skip

    def connections(engine: Engine) -> Connections:
        return Connections(engine, box=lambda: box, default=lambda: tenant)

    config = EngineSettings(flush_linger=0.05, sweep_interval=1.0)
    runtime, dispatcher = embedded_runtime(url, connections, config)
    dispatcher.start()
    app = create_web_app(
        connections=connections(runtime.engine),
        inbox=Inbox(ThreadedWriter(runtime.engine), dispatcher),
    )
    assert isinstance(runtime.limiter, LocalRateLimiter)
    mount_status_page(
        app,
        StatusPage(
            engine=runtime.engine,
            connections=connections(runtime.engine),
            admin_token=ADMIN,
            limiter=runtime.limiter,
            wake=waker(dispatcher),
        ),
    )
    server = BackgroundServer(app).start()
    try:
        yield Product(server.url, planhat, runtime.engine, dispatcher)
    finally:
        server.stop()
        dispatcher.stop()
        planhat.stop()
        runtime.engine.dispose()


def company(number: int, version: int = 1) -> dict[str, Any]:
    return {"model": "companies", "key": {"sourceId": f"co-{number}"}, "version": version,
            "fields": {"name": f"Company {number} v{version}"}}  # fmt: skip


LICENSE = {"model": "licenses", "key": {"sourceId": "lic-1"}, "version": 1,
           "fields": {"companyId": "srcid-co-1", "product": "Pro", "_currency": "USD",
                      "mrr": 490, "fromDate": "2026-01-01"}}  # fmt: skip


def test_log_in_see_the_counts_and_retry_a_dead_letter_until_it_lands(
    product: Product, tmp_path: Path
) -> None:
    wanted = os.environ.get("PLANHAT_SYNC_SCREENSHOT")
    screenshot = ROOT / wanted if wanted else tmp_path / "status-page.png"
    from playwright.sync_api import expect, sync_playwright

    # given a known run: 12 company events (two of them updates), then a license that
    # Planhat refuses because the token may not create licenses: one dead letter
    for number in range(10):
        product.send(f"co-{number}", company(number))
    product.send("co-1-v2", company(1, 2))
    product.send("co-2-v2", company(2, 2))
    product.drain()
    product.faults({"deny": {"licenses": ["create"]}})
    product.send("lic-1", LICENSE)
    product.drain()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            # a wrong token is refused; the login link with the right one lets us in
            page.goto(f"{product.url}/ui")
            expect(page.get_by_role("button", name="Log in")).to_be_visible()
            page.get_by_label("admin token").fill("not-it")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_text("That is not the admin token.")).to_be_visible()
            page.goto(f"{product.url}/ui/login?token={ADMIN}")

            # the tenant's counts, and its charts
            hour = page.locator('section[data-connection="default"] tr[data-window="last hour"]')
            expect(hour.locator('[data-count="received"]')).to_have_text("13")
            expect(hour.locator('[data-count="applied"]')).to_have_text("13")
            expect(hour.locator('[data-count="dead"]')).to_have_text("1")
            expect(page.locator("svg.chart").first).to_be_visible()
            expect(page.get_by_role("img", name="Throughput (events per slice, last hour)"))
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000  # a page, not a blank

            # the dead letter, with its reason and the record
            page.locator("#dead-letters a").first.click()
            expect(page.locator("#reason")).to_contain_text("permission")
            expect(page.locator("#record")).to_contain_text('"product": "Pro"')

            # when the cause is fixed (the token may create licenses) and Retry is pressed
            product.faults({"deny": {}})
            page.get_by_role("button", name="Retry").click()
            expect(page.locator("#message")).to_contain_text("queued")

            # then the record's story ends in Planhat, with its _id
            product.drain()
            with PlanhatClient("check", base_url=product.planhat.url) as planhat:
                landed = planhat.get("licenses", "srcid-lic-1")
            page.goto(f"{product.url}/ui/search?q=lic-1")
            expect(page.locator('tr[data-stage="sent"]')).to_contain_text(landed["_id"])
            page.goto(f"{product.url}/ui")
            expect(page.locator("#dead-letters")).to_contain_text("None.")
        finally:
            browser.close()
