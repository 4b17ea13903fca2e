"""The ``Source`` seam: what a source is, and the optional capabilities the worker discovers.

Every source is one object in the registry (``connectors/sources.py``). The worker never
names a source: it asks the registered object what it can do, by checking which of the
small protocols below it satisfies (``isinstance`` on ``runtime_checkable`` protocols), and
reads its settings by the generic rules here.

    Source              verify a delivery + its event id; pure mapping; mapping options
    ├── HasApi          credentials and an API base URL
    │   ├── Polled      feeds of events to poll from that API
    │   ├── Backfilled  lists of the objects it holds, read once to bring in the past
    │   └── ThinEvents  completes a thin event from that API before mapping
    ├── Preparing       per-model hooks run on a batch just before it is sent to Planhat
    ├── PlanhatHints    deliveries name a Planhat record that changed: the engine re-reads it
    ├── OffersFields    fields a custom field rule may read (connectors/custom_fields/)
    └── WritesBack      writes a change made in Planhat back to the source (two-way)
        └── ReadsBack   spells a value written to it otherwise when it comes back

Settings, read generically: the ``default`` connection's webhook secret comes from
``Source.env_secret``; a credential ``name`` of source ``s`` is the secret ``s:name`` of a
stored connection (``--secret s:name=…``) and ``<S>_<NAME>`` in the environment for
``default``; a source's API base URL is overridden by ``<S>_API_BASE`` (local fakes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx

from connectors.change import Change
from connectors.custom_fields.paths import FieldPath
from connectors.options import Option
from connectors.planhat.client import PlanhatClient


class Source(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def options(self) -> tuple[Option, ...]:
        """The mapping choices a connection may change (``<source>.<name>``)."""
        ...

    @property
    def checks_on_receipt(self) -> bool:
        """Map while the sender waits and answer 400 for a body that cannot be mapped.
        Only for a source whose sender is the user; any other source's verified event is
        kept, and one that cannot be mapped becomes a dead letter (replayable)."""
        ...

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        """The ``default`` connection's webhook secret, from the environment (or None)."""
        ...

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        """Check the signature over the raw ``body``; return the source's event id.
        Raises ``SignatureError`` (constant-time comparisons only)."""
        ...

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        """The changes a stored event stands for (pure: no I/O). ``options`` holds every
        option of this source, checked, defaults filled (``source_options``)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Credential:
    """A source API credential: the secret ``<source>:<name>``, env ``<SOURCE>_<NAME>``."""

    name: str
    help: str
    legacy_env: str | None = None  # an older variable, still read when the new one is unset

    def env_names(self, source: str) -> tuple[str, ...]:
        generic = f"{source}_{self.name}".upper()
        return (generic, self.legacy_env) if self.legacy_env else (generic,)


@dataclass(frozen=True, slots=True)
class Feed:
    """One stream of a source's events, polled from a cursor (``worker/intake/poll.py``)."""

    source: str
    fetch: Callable[[httpx.Client, int], list[Any]]  # events from a unix time, oldest first
    position: Callable[[Any], int]  # an event's place in time (unix seconds)
    event_id: Callable[[Any], str]  # its id, the same a webhook delivery is stored under
    lookback: int  # seconds asked again before the cursor
    cursor: str = ""  # the cursor's name when a source has several feeds; else the source's

    @property
    def cursor_name(self) -> str:
        return self.cursor or self.source


@runtime_checkable
class HasApi(Protocol):
    """A source with an API the worker calls: its credentials and base URL."""

    @property
    def credentials(self) -> tuple[Credential, ...]: ...

    @property
    def api_base(self) -> str | None:
        """The API's base URL (None: derived from a credential, e.g. Chargebee's site)."""
        ...


@runtime_checkable
class Polled(HasApi, Protocol):
    """Events to poll from the source's API."""

    def feeds(
        self, credentials: Mapping[str, str], options: Mapping[str, str], api_base: str | None
    ) -> Iterator[tuple[Feed, httpx.Client]]:
        """The feeds these credentials can read (none without them), each with its client.
        ``credentials``: credential name → value; ``api_base``: an override, or None."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectPage:
    """One page of a source's objects, each wrapped as the event its webhook would carry
    (so the source's one mapping reads both), and where the next page starts (None: this
    was the last). Event ids are deterministic: a page read twice is stored once."""

    events: list[tuple[str, bytes]]  # (event id, body)
    next: str | None


@dataclass(frozen=True, slots=True)
class ObjectList:
    """One type of a source's objects (``customers``), read a page at a time by
    ``fetch(client, position, since)``: ``position`` is a page's ``next`` (None: the
    first page), ``since`` a unix time the objects were created at or after (None: all)."""

    name: str
    fetch: Callable[[httpx.Client, str | None, int | None], ObjectPage]


@runtime_checkable
class Backfilled(HasApi, Protocol):
    """Objects to read once, to bring in what existed before the connection (Stripe keeps
    30 days of events). A ``Polled`` source without it is backfilled by its feeds read
    from the beginning (``worker/intake/backfill.py``)."""

    def object_lists(
        self, credentials: Mapping[str, str], options: Mapping[str, str], api_base: str | None
    ) -> Iterator[tuple[ObjectList, httpx.Client]]:
        """The lists these credentials can read (none without them), each with its client."""
        ...


class CannotComplete(Exception):
    """A thin event that can never be completed as things are; the message says why."""


@runtime_checkable
class ThinEvents(HasApi, Protocol):
    """Deliveries only name what changed: the worker fetches the detail before mapping,
    keeps it with the stored event, and ``changes`` is given that detail instead."""

    def detail(self, credentials: Mapping[str, str], api_base: str | None, body: bytes) -> bytes:
        """The detail to map. Raises ``CannotComplete`` when asking again cannot help,
        ``NoBudget`` when the source's rate limit says to wait (no attempt counted); any
        other error (``httpx.HTTPError``, ``ValueError``) leaves the event to be retried."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Hint:
    """What a delivery says changed in Planhat: a record of a model, by its ``_id``."""

    model: str
    planhat_id: str
    deleted: bool = False  # the sender says the record was deleted: nothing to read


@runtime_checkable
class PlanhatHints(Protocol):
    """Deliveries are hints that a Planhat record changed (Planhat's own Automations).
    Nothing in them is trusted but the record they name: the engine re-reads it from
    Planhat with the connection's own client, within its token's budget, keeps what it
    read with the stored event (``connectors.planhat.reread.detail``), and ``changes`` is
    given that detail: changes with ``origin="planhat"``, keyed by the record's ``_id``."""

    def hint(self, body: bytes) -> Hint:
        """The record a stored (verified) delivery names; ``MappingError`` if none."""
        ...


@runtime_checkable
class OffersFields(Protocol):
    """Source fields a connection's custom field rules may carry into Planhat
    (``connectors/custom_fields/``): the paths it offers, checked when a rule is added,
    and the objects an event holds, which those paths start from."""

    @property
    def field_paths(self) -> tuple[FieldPath, ...]: ...

    def field_roots(self, body: bytes) -> Mapping[str, Any]:
        """Root name → the object of that name in a stored event (the body its
        ``changes`` is given): ``{"customer": {...}}``; none for an event without one."""
        ...


class NoBudget(Exception):
    """The connection's rate budget is spent: try again after ``wait`` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"no rate budget for {wait:.1f} s")
        self.wait = wait


@dataclass(frozen=True, slots=True, kw_only=True)
class PrepareContext:
    """What a prepare hook may use: Planhat (each call after ``take_budget()``, which
    raises ``NoBudget``), and ``memo``, a place for its caches that lives as long as the
    engine, one per connection (never used by two flushes at once)."""

    connection: str
    planhat: PlanhatClient
    take_budget: Callable[[], None]
    memo: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    records: list[dict[str, Any]]  # to send, in the order given
    refused: dict[int, str] = field(default_factory=dict)  # index → why it cannot be sent
    # index → why it cannot be sent yet: what it needs may still arrive (a company being
    # written). It waits like a child for its parent, then becomes a dead letter.
    waiting: dict[int, str] = field(default_factory=dict)
    calls: int = 0  # Planhat calls the hook made
    # index → synced fields the hook found (``custom`` merged per key): sent, and kept on
    # the record's link as what Planhat holds, so a change made there goes back
    settled: dict[int, dict[str, Any]] = field(default_factory=dict)


class PrepareHook(Protocol):
    def __call__(
        self,
        context: PrepareContext,
        fields: Sequence[Mapping[str, Any]],
        records: Sequence[dict[str, Any]],
    ) -> Prepared:
        """Complete a batch before it is sent. ``fields``: each record's queued fields,
        hints (``~`` names) included; ``records``: what would be sent. Records the hook
        has nothing to do with come back as they are. Planhat errors propagate: the flush
        maps them (a 429 pauses the shared budget and costs no attempt)."""
        ...


@runtime_checkable
class Preparing(Protocol):
    @property
    def prepare(self) -> Mapping[str, PrepareHook]:
        """Planhat model → the hook run on its batches (for records of any source)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteBackContext:
    """What a write-back may use: the connection's credentials for the source, its webhook
    secret, the source's options (checked, defaults filled) and an HTTP client (timeouts
    set, no redirects) that lives for one batch of writes; the engine counts each of its
    calls in the source credential's budget. ``record_window(name, limit, window)`` takes one
    of a record's writes, at most ``limit`` in ``window`` seconds shared by every worker:
    0.0 when taken, else the seconds until one is free (raise ``TargetBusy``). ``planhat``:
    Planhat in the token's budget and the connection's memo, for a source that must look
    something up there (None when the engine gives none)."""

    connection: str
    credentials: Mapping[str, str]
    api_base: str | None
    secret: str | None
    options: Mapping[str, str]
    http: httpx.Client
    record_window: Callable[[str, int, float], float] = lambda name, limit, window: 0.0
    planhat: PrepareContext | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteBack:
    """A change made in Planhat, to be written to the source record it is linked to."""

    model: str  # the Planhat model
    key_field: str  # the source record's key, as the source named it: "sourceId"
    key: str
    planhat_id: str
    fields: Mapping[str, Any]  # the synced fields that changed in Planhat
    version: int  # Planhat's updatedAt, in microseconds (``version_number``)
    deleted: bool = False  # the record was deleted in Planhat

    @property
    def delivery_id(self) -> str:
        """Stable per record version: a retry of one write carries the same id, so the
        target can deduplicate; the next version has another."""
        digest = hashlib.sha256(f"{self.model}\x00{self.planhat_id}\x00{self.version}".encode())
        return f"phs_{digest.hexdigest()[:32]}"


class WriteBackError(Exception):
    """A write-back the source did not take. Grouped by what the engine must do:

    WriteBackError
    ├── TargetRateLimited   429: the source's budget pauses ``retry_after``; no attempt
    ├── TargetBusy          this record takes no write for ``wait`` s; the others go on
    ├── TargetUnavailable   5xx, timeout, no connection: back off and try again
    └── TargetRefused       any other answer: a dead letter carrying the answer
    """


class TargetRateLimited(WriteBackError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TargetBusy(WriteBackError):
    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class TargetUnavailable(WriteBackError):
    pass


class TargetRefused(WriteBackError):
    pass


@dataclass(frozen=True, slots=True)
class Ownership:
    """Who owns which fields of a model (names as compared: ``custom.<name>`` for a custom
    field); every other field is shared, last writer wins."""

    source: frozenset[str] = frozenset()  # never written back; edits in Planhat undone
    planhat: frozenset[str] = frozenset()  # never overwritten from the source; undone there


@runtime_checkable
class WritesBack(Protocol):
    """A two-way source: a change made in Planhat to a record linked to one of its records
    is written back to it. The engine checks echoes before (ARCHITECTURE.md, invariant 5),
    keeps a budget of ``write_rate_per_minute`` per source credential, retries, and makes
    a refused write a dead letter."""

    @property
    def write_rate_per_minute(self) -> float: ...

    def writes_back(self, model: str, options: Mapping[str, str]) -> bool:
        """Whether changes made in Planhat to ``model`` go back, with these options."""
        ...

    def ownership(self, model: str, options: Mapping[str, str]) -> Ownership:
        """Which of ``model``'s fields each side owns, with these options."""
        ...

    def write_back(self, context: WriteBackContext, change: WriteBack) -> None:
        """Write ``change`` to the source; raise a ``WriteBackError`` when it did not take."""
        ...


@runtime_checkable
class ReadsBack(Protocol):
    """A two-way source whose mapping gives back a value written to it spelled otherwise
    (Zendesk: Planhat ``closed`` is written ``solved``, which comes back as ``solved``;
    a CSM's ``"New "`` comes back ``new``). The engine takes a source's value equal to the
    spelling of what Planhat holds as what Planhat holds, never as a change
    (``worker/pipeline/conflicts.py``). Without it a value comes back as it was written."""

    def read_back(self, model: str, name: str, value: Any, options: Mapping[str, str]) -> Any:
        """What the source's changes carry for the shared field ``name`` (as compared) once
        it holds Planhat's ``value``, in Planhat's terms (through the source's mapping)."""
        ...
