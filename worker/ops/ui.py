"""The status page at ``/ui``, mounted on the receiver's app by ``web`` and ``dev``.

Behind the admin token (PLANHAT_SYNC_ADMIN_TOKEN): ``/ui/login`` takes it from a form or
``?token=`` and sets an HttpOnly, SameSite=Strict cookie holding the token's hash, so the
token itself is not kept by the browser and another site's form cannot post with it
(Retry and Drop are POSTs). Without a configured token there is no page: every ``/ui``
path answers 404 saying how to turn it on.

Retry and Drop are ``worker/pipeline/dlq.py``'s, as ``planhat-sync dlq`` runs them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qs, quote

import structlog
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from state.connections import Connections
from state.db import session_scope
from state.tables import DeadLetter, utcnow
from worker.ops import pages
from worker.ops.health import DEFAULT_MAX_LAG, ShowsUse, budget_reader, problems, token_state
from worker.ops.overview import active_connections, overview
from worker.ops.series import series
from worker.ops.story import search
from worker.pipeline import dlq
from worker.runtime.jobs import Dispatcher

log = structlog.get_logger(__name__)

COOKIE = "planhat_sync_admin"
OFF = "the status page is off: set PLANHAT_SYNC_ADMIN_TOKEN to turn it on\n"
CHART_SPAN = timedelta(hours=1)
LETTERS_SHOWN = 200


@dataclass(slots=True, kw_only=True)
class StatusPage:
    engine: Engine
    connections: Connections
    admin_token: str | None
    limiter: ShowsUse | None = None  # the Planhat budgets' limiter, read only
    # Ask for a flush and a write-back of a connection now (after a retry).
    wake: Callable[[str], None] = lambda _connection: None
    default_options: Mapping[str, str] | None = None
    max_lag: float = DEFAULT_MAX_LAG
    clock: Callable[[], datetime] = field(default=utcnow)


def waker(dispatcher: Dispatcher) -> Callable[[str], None]:
    """Ask for a flush and a write-back of a connection now: what a retried letter needs."""

    def wake(connection: str) -> None:
        dispatcher.flush(connection, 0.0)
        dispatcher.write_back(connection, 0.0)

    return wake


def mount_status_page(app: Starlette, page: StatusPage) -> None:
    if not page.admin_token:
        app.add_route("/ui", _off, methods=["GET", "POST"])
        app.add_route("/ui/{rest:path}", _off, methods=["GET", "POST"])
        return
    routes = _Routes(page, page.admin_token)
    app.add_route("/ui", routes.status, methods=["GET"])
    app.add_route("/ui/login", routes.login, methods=["GET", "POST"])
    app.add_route("/ui/search", routes.search, methods=["GET"])
    app.add_route("/ui/letters/{letter_id:int}", routes.letter, methods=["GET"])
    app.add_route("/ui/letters/{letter_id:int}/retry", routes.retry, methods=["POST"])
    app.add_route("/ui/letters/{letter_id:int}/drop", routes.drop, methods=["POST"])


async def _off(_: Request) -> Response:
    return PlainTextResponse(OFF, status_code=404)


class _Routes:
    """Plain Starlette endpoints; the synchronous ones run in the thread pool (they query
    the database), the login reads its form body."""

    def __init__(self, page: StatusPage, token: str) -> None:
        self._page = page
        self._token = token.encode()
        self._cookie = hashlib.sha256(b"planhat-sync admin " + self._token).hexdigest()

    def _allowed(self, request: Request) -> bool:
        given = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(given.encode(), self._cookie.encode())

    async def login(self, request: Request) -> Response:
        if request.method == "POST":
            form = parse_qs((await request.body()).decode("utf-8", "replace"))
            given = form.get("token", [""])[0]
        else:
            given = request.query_params.get("token", "")
            if not given:
                return HTMLResponse(pages.login_page(failed=False))
        if not hmac.compare_digest(given.encode(), self._token):
            log.info("ui.login_refused")
            return HTMLResponse(pages.login_page(failed=True), status_code=401)
        answer = RedirectResponse("/ui", status_code=303)
        answer.set_cookie(COOKIE, self._cookie, httponly=True, samesite="strict", path="/ui",
                          secure=request.url.scheme == "https")  # fmt: skip
        return answer

    def status(self, request: Request) -> Response:
        if not self._allowed(request):
            return RedirectResponse("/ui/login", status_code=303)
        page, engine = self._page, self._page.engine
        now = page.clock()
        names = active_connections(engine, page.connections.names())
        overviews = overview(
            engine,
            names,
            token_of=lambda name: token_state(page.connections, name),
            budget_of=budget_reader(page.limiter),
            now=now,
        )
        charts = {name: series(engine, name, now=now, span=CHART_SPAN) for name in names}
        letters = dlq.list_dead_letters(engine, limit=LETTERS_SHOWN)
        html = pages.status_page(
            overviews,
            charts,
            letters,
            problems(overviews, max_lag=page.max_lag),
            now=now,
            message=request.query_params.get("message"),
        )
        return HTMLResponse(html)

    def search(self, request: Request) -> Response:
        if not self._allowed(request):
            return RedirectResponse("/ui/login", status_code=303)
        query = request.query_params.get("q", "")[:512]
        stories = search(
            self._page.engine,
            query,
            options_of=self._page.connections.options,
        )
        html = pages.search_page(
            query, stories, self._page.clock(), message=request.query_params.get("message")
        )
        return HTMLResponse(html)

    def letter(self, request: Request) -> Response:
        if not self._allowed(request):
            return RedirectResponse("/ui/login", status_code=303)
        with session_scope(self._page.engine) as session:
            letter = session.get(DeadLetter, request.path_params["letter_id"])
        if letter is None:
            return _back("/ui", f"dead letter {request.path_params['letter_id']} is gone")
        return HTMLResponse(pages.letter_page(letter))

    def retry(self, request: Request) -> Response:
        if not self._allowed(request):
            return RedirectResponse("/ui/login", status_code=303)
        letter_id: int = request.path_params["letter_id"]
        with session_scope(self._page.engine) as session:
            letter = session.get(DeadLetter, letter_id)
            key = letter.key if letter is not None else ""
        try:
            [outcome] = dlq.retry(
                self._page.engine,
                [letter_id],
                default_options=self._page.default_options,
            )
        except LookupError as error:
            return _back("/ui", str(error.args[0]))
        self._page.wake(outcome.connection)
        log.info("ui.dead_letter_retried", letter_id=letter_id, result=outcome.result)
        message = f"dead letter {letter_id}: {outcome.result}"
        return _back(f"/ui/search?q={quote(key)}", message)

    def drop(self, request: Request) -> Response:
        if not self._allowed(request):
            return RedirectResponse("/ui/login", status_code=303)
        letter_id: int = request.path_params["letter_id"]
        try:
            dlq.drop(self._page.engine, letter_id)
        except LookupError as error:
            return _back("/ui", str(error.args[0]))
        log.info("ui.dead_letter_dropped", letter_id=letter_id)
        return _back("/ui", f"dead letter {letter_id} dropped")


def _back(to: str, message: str) -> Response:
    joiner = "&" if "?" in to else "?"
    return RedirectResponse(f"{to}{joiner}message={quote(message)}", status_code=303)
