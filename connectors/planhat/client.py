"""The Planhat REST client: every model, every operation, one connection pool.

Synchronous on purpose: Celery tasks and the CLI are synchronous, and a bulk call is one
request anyway. Tests pass an ``httpx`` transport (``MockTransport`` or a real socket to
the sandbox) instead of patching anything.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from connectors.planhat.bulk import (
    MAX_BULK_BYTES,
    MAX_BULK_ITEMS,
    Outcome,
    ReadBack,
    RecordResult,
    is_bulk_answer,
    plan_chunks,
    rejected_chunk,
    results_for_chunk,
)
from connectors.planhat.errors import (
    NotFoundError,
    PlanhatError,
    RateLimitedError,
    RejectedError,
    RetryableError,
    error_for_response,
)
from connectors.planhat.models import ModelSpec, Operation, UnsupportedOperationError, model_spec
from connectors.planhat.retry import RetryPolicy, equal_jitter
from connectors.tls import tls

DEFAULT_BASE_URL = "https://api.planhat.com"
COMPANIES_SPEC = model_spec("companies")
# Bulk upserts of 5,000 records can take Planhat tens of seconds; connecting should not.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=60.0, pool=30.0)
USER_AGENT = "planhat-sync/0.1"
MIN_RATE_LIMIT_WAIT = 1.0

log = structlog.get_logger(__name__)

JSONObject = dict[str, Any]
# Told of every try of every call: (method, path, outcome, seconds), outcome one of "ok",
# "rate_limited", "error". The worker counts them (worker/runtime/metrics.py); this
# package imports no metrics library.
CallObserver = Callable[[str, str, str, float], None]


class PlanhatClient:
    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float], float] = equal_jitter,
        max_bulk_bytes: int = MAX_BULK_BYTES,
        observe: CallObserver | None = None,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
    ) -> None:
        """``event_hooks``: httpx's, e.g. ``worker.runtime.ratelimit.metered`` to take each
        request, retries included, from a shared rate budget before it goes."""
        if not token:
            raise ValueError("a Planhat API token is required")
        self.base_url = base_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._jitter = jitter
        self._max_bulk_bytes = max_bulk_bytes
        self._observe = observe
        self._http = httpx.Client(
            verify=tls(),
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,  # a redirect would resend the token elsewhere
            event_hooks=dict(event_hooks or {}),
        )

    def __repr__(self) -> str:  # never the token
        return f"PlanhatClient(base_url={self.base_url!r})"

    def __enter__(self) -> PlanhatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    # --- operations -------------------------------------------------------------------

    def list_page(
        self,
        model: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        sort: str | None = None,
        select: Sequence[str] | None = None,
        company_ids: Sequence[str] | None = None,
    ) -> list[JSONObject]:
        """One page: ``GET /<model>?limit=&offset=`` (Planhat returns a bare array).

        ``limit`` is capped at the model's page size (2,000; 5,000 for companies: the most
        Planhat returns, robocorp/robocorp-planhat ``src/planhat/client.py``): asking for
        more would get a page that looks short, and a pager would stop early.
        """
        spec = self._spec(model, Operation.LIST)
        params: dict[str, str | int] = {"limit": _page_limit(spec, limit), "offset": offset}
        if sort:
            params["sort"] = sort
        if select:
            params["select"] = ",".join(select)
        if company_ids:
            params["companyId"] = ",".join(company_ids)
        body = self._json(self._send("GET", f"/{spec.name}", params=params, resend_safe=True))
        if not isinstance(body, list):
            raise PlanhatError(f"expected a JSON array from GET /{spec.name}, got {body!r:.200}")
        return body

    def list(
        self,
        model: str,
        *,
        page_size: int | None = None,
        sort: str | None = None,
        select: Sequence[str] | None = None,
        company_ids: Sequence[str] | None = None,
    ) -> Iterator[JSONObject]:
        """Every record, paging with limit/offset until a short page (there is no total).
        Pages are at most the model's cap, whatever ``page_size`` asks."""
        limit = _page_limit(self._spec(model, Operation.LIST), page_size)
        offset = 0
        while True:
            page = self.list_page(
                model, limit=limit, offset=offset, sort=sort, select=select, company_ids=company_ids
            )
            yield from page
            if len(page) < limit:
                return
            offset += len(page)

    def lean_companies(self, *, page_size: int | None = None) -> Iterator[JSONObject]:
        """Every company, lean: ``GET /leancompanies`` ("Get lean list" under Company,
        https://docs.planhat.com), paged like ``/companies`` (5,000 a page: assumed).
        Entries hold ``_id``, ``name``, ``externalId``, ``sourceId`` (assumed)."""
        limit = _page_limit(COMPANIES_SPEC, page_size)
        offset = 0
        while True:
            params: dict[str, str | int] = {"limit": limit, "offset": offset}
            page = self._json(self._send("GET", "/leancompanies", params=params, resend_safe=True))
            if not isinstance(page, list):
                raise PlanhatError(
                    f"expected a JSON array from GET /leancompanies, got {page!r:.200}"
                )
            yield from page
            if len(page) < limit:
                return
            offset += len(page)

    def my_profile(self) -> JSONObject:
        """``GET /myprofile``: the token's own user (a Service Account); a cheap way to
        check a token (shared/reference/planhat-api.md). Its fields are not documented."""
        return self._object(self._send("GET", "/myprofile", resend_safe=True))

    def get(self, model: str, record_id: str) -> JSONObject:
        """``record_id`` is an ``_id``, ``extid-<externalId>`` or ``srcid-<sourceId>``."""
        spec = self._spec(model, Operation.GET)
        return self._object(self._send("GET", _path(spec, record_id), resend_safe=True))

    def create(self, model: str, data: Mapping[str, Any]) -> JSONObject:
        spec = self._spec(model, Operation.CREATE)
        # POST is not idempotent: after a 5xx the record may exist, so it is not resent.
        return self._object(self._send("POST", f"/{spec.name}", body=data, resend_safe=False))

    def update(self, model: str, record_id: str, data: Mapping[str, Any]) -> JSONObject:
        """Partial update (``PUT /<model>/<id>``; Planhat has no PATCH)."""
        spec = self._spec(model, Operation.UPDATE)
        return self._object(self._send("PUT", _path(spec, record_id), body=data, resend_safe=True))

    def delete(self, model: str, record_id: str) -> JSONObject:
        spec = self._spec(model, Operation.DELETE)
        return self._object(self._send("DELETE", _path(spec, record_id), resend_safe=True))

    def bulk_upsert(
        self,
        model: str,
        records: Sequence[Mapping[str, Any]],
        *,
        chunk_size: int = MAX_BULK_ITEMS,
    ) -> builtins.list[RecordResult]:
        """Insert or update ``records``; one ``RecordResult`` per input record, in order.

        Planhat matches ``_id``, then ``sourceId``, then the external id. A chunk is resent
        after a 5xx only if every record in it carries such a key (then a replay updates
        rather than duplicates). A payload Planhat refuses as a whole (400) makes every
        record of that chunk ``REJECTED`` with Planhat's message. Fatal errors, and
        retryable ones that outlast the policy, raise: records of chunks already answered
        are in Planhat, and resending them all is safe for keyed records.
        """
        spec = self._spec(model, Operation.UPSERT)
        results: builtins.list[RecordResult] = []
        chunks = plan_chunks(spec, records, max_items=chunk_size, max_bytes=self._max_bulk_bytes)
        read_back = self._read_back(spec)
        for chunk in chunks:
            try:
                response = self._send(
                    "PUT",
                    f"/{spec.name}",
                    body=chunk.payload,
                    resend_safe=chunk.all_keyed,
                    # 400 and 403 answers carry the bulk answer (createdErrors/updatedErrors,
                    # permissionErrors; a 403 may be partial: writes applied), per record.
                    # https://www.planhat.com/developers/api/http-response-codes
                    answered=BULK_ANSWER_STATUSES,
                )
            except RejectedError as error:  # a 400 without a bulk answer: all refused
                results.extend(rejected_chunk(chunk, error.message))
                continue
            answer = self._json(response)
            if not isinstance(answer, dict):
                raise PlanhatError(f"unexpected bulk upsert answer: {answer!r:.200}")
            results.extend(
                results_for_chunk(
                    spec, chunk, answer, status=response.status_code, read_back=read_back
                )
            )
        results.sort(key=lambda result: result.index)
        return results

    def upsert_each(
        self, model: str, records: Sequence[Mapping[str, Any]], *, key_field: str
    ) -> builtins.list[RecordResult]:
        """Keyed upsert for models without bulk upsert (custom fields): update the record
        its ``key_field`` names, or create it when Planhat has none. One result each.

        Custom fields have no externalId/sourceId and no ``extid-``/``srcid-`` forms
        (https://www.planhat.com/developers/api/custom-field): they are found by ``name``
        within their ``parent`` model, from one listing per call.
        """
        spec = self._spec(model, Operation.CREATE)
        if key_field not in spec.key_fields:
            raise ValueError(f"{model} records are keyed by {' or '.join(spec.key_fields)}")
        by_name: dict[tuple[str, str], str] | None = None
        results: builtins.list[RecordResult] = []
        for index, record in enumerate(records):
            key = str(record.get(key_field) or "")
            fields = {k: v for k, v in record.items() if k != key_field}
            try:
                if spec.name_key is not None:
                    if by_name is None:
                        by_name = self._ids_by_name(spec)
                    scoped = (key, str(record.get(spec.name_key[1]) or ""))
                    done, outcome = self._update_or_create(model, by_name.get(scoped), record)
                    by_name[scoped] = str(done.get("_id") or "")
                else:
                    prefix = "srcid-" if key_field == "sourceId" else "extid-"
                    ref = f"{prefix}{key}"
                    done, outcome = self._update_or_create(model, ref, record, fields)
            except RejectedError as error:
                results.append(
                    RecordResult(index=index, outcome=Outcome.REJECTED, message=error.message)
                )
                continue
            results.append(RecordResult(index=index, outcome=outcome, id=done.get("_id")))
        return results

    def _update_or_create(
        self,
        model: str,
        ref: str | None,
        record: Mapping[str, Any],
        fields: Mapping[str, Any] | None = None,
    ) -> tuple[JSONObject, Outcome]:
        if ref:
            try:
                done = self.update(model, ref, record if fields is None else fields)
            except NotFoundError:
                pass  # deleted meanwhile, or never there: create it
            else:
                return done, Outcome.UPDATED
        return self.create(model, dict(record)), Outcome.CREATED

    def _ids_by_name(self, spec: ModelSpec) -> dict[tuple[str, str], str]:
        """(name, parent) → _id of every record of a model keyed by name."""
        assert spec.name_key is not None
        name, scope = spec.name_key
        found: dict[tuple[str, str], str] = {}
        for record in self.list(spec.name):
            found.setdefault((str(record.get(name)), str(record.get(scope) or "")), record["_id"])
        return found

    def _read_back(self, spec: ModelSpec) -> ReadBack | None:
        """How a bulk answer that names only ``_id`` is tied to its records when counting
        cannot: ``GET /<model>/<_id>`` for each record written (only then)."""
        if not spec.supports(Operation.GET):
            return None

        def read(ids: Sequence[str]) -> dict[str, JSONObject]:
            found: dict[str, JSONObject] = {}
            for record_id in ids:
                try:
                    found[record_id] = self.get(spec.name, record_id)
                except NotFoundError:
                    continue
            return found

        return read

    # --- plumbing ---------------------------------------------------------------------

    @staticmethod
    def _spec(model: str, operation: Operation) -> ModelSpec:
        spec = model_spec(model)
        if not spec.supports(operation):
            raise UnsupportedOperationError(spec, operation)
        return spec

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        resend_safe: bool,
        answered: Collection[int] = (),
    ) -> httpx.Response:
        """One call, waiting out 429s and retrying what may be retried. A response whose
        status is in ``answered`` and whose body is a bulk answer is returned, not raised.

        A 429 waits the time Planhat gives (``Retry-After`` or ``X-Rate-Limit-Reset``), or
        when it gives none a guess that doubles at each such 429 up to the policy's cap;
        it is not an attempt. A 5xx or timeout is retried with capped exponential backoff
        and jitter when ``resend_safe``; a request that never reached Planhat (connection
        refused, pool timeout) is always safe to resend.
        """
        failures = 0
        guesses = 0  # 429s in a row without a time
        rate_limited_for = 0.0
        while True:
            reached_server = True
            started = time.perf_counter()
            try:
                response = self._http.request(method, path, params=params, json=body)
                error = error_for_response(response)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                reached_server = False
                error = RetryableError(f"could not reach Planhat: {exc!r}", method=method, url=path)
            except httpx.TransportError as exc:
                error = RetryableError(f"transport error: {exc!r}", method=method, url=path)
            elapsed = time.perf_counter() - started
            elapsed_ms = round(elapsed * 1000, 1)
            if error is not None and error.status_code in answered and _bulk_answer(response):
                error = None
            if self._observe is not None:
                outcome = "ok" if error is None else "error"
                if isinstance(error, RateLimitedError):
                    outcome = "rate_limited"
                self._observe(method, path, outcome, elapsed)
            if error is None:
                log.debug("planhat.call", method=method, path=path, elapsed_ms=elapsed_ms)
                return response
            if isinstance(error, RateLimitedError):
                if error.guessed:
                    guesses += 1
                    error.retry_after = self._retry.rate_limit_guess_for(guesses)
                # At least a second: a "Retry-After: 0" must not turn into a busy loop.
                wait = max(MIN_RATE_LIMIT_WAIT, error.retry_after)
                if rate_limited_for + wait > self._retry.max_rate_limit_wait:
                    raise error
                log.info("planhat.rate_limited", method=method, path=path, wait_s=wait)
                self._sleep(wait)
                rate_limited_for += wait
                continue
            if isinstance(error, RetryableError) and (resend_safe or not reached_server):
                failures += 1
                if failures < self._retry.attempts:
                    wait = self._jitter(self._retry.backoff_ceiling(failures))
                    log.warning(
                        "planhat.retry",
                        method=method,
                        path=path,
                        attempt=failures,
                        wait_s=round(wait, 3),
                        error=str(error),
                    )
                    self._sleep(wait)
                    continue
            raise error

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise PlanhatError(
                f"Planhat answered {response.status_code} with a body that is not JSON: "
                f"{response.text[:200]!r}",
                method=response.request.method,
                url=str(response.request.url),
                status_code=response.status_code,
            ) from None

    def _object(self, response: httpx.Response) -> JSONObject:
        body = self._json(response)
        if not isinstance(body, dict):
            raise PlanhatError(f"expected a JSON object, got {body!r:.200}")
        return body


BULK_ANSWER_STATUSES = frozenset({400, 403})


def _bulk_answer(response: httpx.Response) -> bool:
    try:
        return is_bulk_answer(response.json())
    except ValueError:
        return False


def _page_limit(spec: ModelSpec, limit: int | None) -> int:
    """``limit`` within 1 and the model's cap; none (or 0) is the cap."""
    return max(1, min(limit or spec.page_size, spec.page_size))


def _path(spec: ModelSpec, record_id: str) -> str:
    if not record_id:
        raise ValueError(f"an id is required to address one {spec.singular}")
    return f"/{spec.name}/{quote(record_id, safe='')}"
