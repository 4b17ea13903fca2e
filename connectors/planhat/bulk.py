"""Bulk upsert: chunking, de-duplication and per-record results.

Planhat's ``PUT /<model>`` takes at most 5,000 items, rejects a payload in which one key
appears twice (400), and answers with counts and key lists rather than one result per item
(https://docs.planhat.com, "Bulk Upsert"). This module turns a caller's list of records into
valid chunks and turns each answer back into one ``RecordResult`` per input record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from connectors.planhat.models import ModelSpec

Record = dict[str, Any]

MAX_BULK_ITEMS = 5000
MAX_BULK_BYTES = 32 * 1024 * 1024  # Planhat's documented request size limit


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # matched, nothing to change (Planhat's "nonupdates")
    REJECTED = "rejected"  # Planhat refused this record; ``message`` says why
    IGNORED = "ignored"  # acknowledged by neither inserts, updates nor errors
    UNCONFIRMED = "unconfirmed"  # a keyless record whose fate can't be told apart


SUCCESSES = frozenset({Outcome.CREATED, Outcome.UPDATED, Outcome.UNCHANGED})


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordResult:
    index: int  # position in the caller's input
    outcome: Outcome
    id: str | None = None  # Planhat's _id, when known
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESSES

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "outcome": str(self.outcome),
            "id": self.id,
            "message": self.message,
        }


Key = tuple[str, ...]


def record_keys(spec: ModelSpec, record: Mapping[str, Any]) -> list[Key]:
    """Every key Planhat could match this record on, in Planhat's order.

    An external id is unique per company, so its key includes the company reference.
    """
    keys: list[Key] = []
    for name in spec.keyables:
        value = record.get(name)
        if value in (None, ""):
            continue
        if name == spec.external_key and spec.company_key:
            keys.append((name, str(record.get(spec.company_key) or ""), str(value)))
        else:
            keys.append((name, str(value)))
    return keys


def _merge(earlier: Record, later: Record) -> Record:
    """Apply ``later`` on top of ``earlier`` the way two partial updates would."""
    merged = {**earlier, **later}
    if isinstance(earlier.get("custom"), dict) and isinstance(later.get("custom"), dict):
        merged["custom"] = {**earlier["custom"], **later["custom"]}
    return merged


@dataclass(slots=True)
class Chunk:
    """One request's payload, and for each payload item the input positions it carries."""

    payload: list[Record] = field(default_factory=list)
    members: list[list[int]] = field(default_factory=list)
    size: int = 2  # bytes of the JSON array so far: "[" and "]"
    keyless: int = 0  # items carrying no sourceId or external id
    by_key: dict[Key, int] = field(default_factory=dict)

    @property
    def all_keyed(self) -> bool:
        """Whether resending this chunk is safe: every item is matched on a key, so a
        replay updates instead of inserting twice. An ``_id`` alone does not make it safe:
        one that matches nothing creates a new record ("If the provided key doesn't match
        any existing record, a new record will be created",
        https://www.planhat.com/developers/api/bulk-upsert), under a new ``_id``
        (assumed), so a replay would create another."""
        return self.keyless == 0


def plan_chunks(
    spec: ModelSpec,
    records: Sequence[Mapping[str, Any]],
    *,
    max_items: int = MAX_BULK_ITEMS,
    max_bytes: int = MAX_BULK_BYTES,
) -> list[Chunk]:
    """Split ``records`` into chunks of at most ``max_items`` items and ``max_bytes`` bytes.

    Two records with the same key in one chunk are merged (later fields win), because
    Planhat answers 400 to a payload that names a key twice.
    """
    if not 1 <= max_items <= MAX_BULK_ITEMS:
        raise ValueError(f"max_items must be between 1 and {MAX_BULK_ITEMS}")
    chunks: list[Chunk] = [Chunk()]
    for index, original in enumerate(records):
        if not isinstance(original, Mapping):
            raise TypeError(f"record {index} is a {type(original).__name__}, not an object")
        record = dict(original)
        keys = record_keys(spec, record)
        size = len(json.dumps(record, separators=(",", ":"), default=str)) + 1
        if size + 2 > max_bytes:
            raise ValueError(f"record {index} alone is {size} bytes, over the {max_bytes} limit")
        chunk = chunks[-1]
        positions = {chunk.by_key[k] for k in keys if k in chunk.by_key}
        fits = chunk.size + size <= max_bytes
        if len(positions) == 1 and fits:
            # Same record as an item already here: merge, so the payload names it once,
            # unless the merged record's keys (a new companyId moves its external key)
            # would name another item's key.
            position = next(iter(positions))
            merged = _merge(chunk.payload[position], record)
            merged_keys = record_keys(spec, merged)
            if all(chunk.by_key.get(k, position) == position for k in merged_keys):
                for key in record_keys(spec, chunk.payload[position]):
                    chunk.by_key.pop(key, None)
                chunk.payload[position] = merged
                chunk.members[position].append(index)
                chunk.size += size
                for key in merged_keys:
                    chunk.by_key[key] = position
                continue
        # A record whose keys point at two items (sourceId of one, externalId of another),
        # or whose merge would, can be neither merged nor added without naming a key twice:
        # it opens a new chunk, which also keeps its write after theirs.
        if positions or len(chunk.payload) >= max_items or not fits:
            chunk = Chunk()
            chunks.append(chunk)
        position = len(chunk.payload)
        chunk.keyless += not any(key[0] != "_id" for key in keys)
        chunk.payload.append(record)
        chunk.members.append([index])
        chunk.size += size
        for key in keys:
            chunk.by_key.setdefault(key, position)
    return [chunk for chunk in chunks if chunk.payload]


def _entry_keys(spec: ModelSpec, entry: Mapping[str, Any]) -> Iterator[Key]:
    """Keys named by one entry of a bulk answer (its own fields, or a nested item's)."""
    yield from record_keys(spec, entry)
    # An external id in an answer may come without its company: match on the value alone.
    if entry.get(spec.external_key) not in (None, ""):
        yield ("~" + spec.external_key, str(entry[spec.external_key]))
    for value in entry.values():
        if isinstance(value, Mapping):
            yield from _entry_keys(spec, value)


def _lookup(spec: ModelSpec, payload: Sequence[Record]) -> dict[Key, int]:
    table: dict[Key, int] = {}
    for position, record in enumerate(payload):
        for key in record_keys(spec, record):
            table.setdefault(key, position)
        if record.get(spec.external_key) not in (None, ""):
            table.setdefault(("~" + spec.external_key, str(record[spec.external_key])), position)
    return table


def _message(entry: Any) -> str:
    if isinstance(entry, Mapping):
        for name in ("message", "error", "msg", "reason"):
            if entry.get(name):
                value = entry[name]
                return value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(entry, default=str)


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item if isinstance(item, Mapping) else {"message": str(item)} for item in value]


BULK_ANSWER_KEYS = frozenset(
    {
        "created",
        "createdErrors",
        "insertsKeys",
        "updated",
        "updatedErrors",
        "updatesKeys",
        "nonupdates",
        "modified",
        "upsertedIds",
        "permissionErrors",
    }
)


def is_bulk_answer(body: Any) -> bool:
    """Whether a JSON body is Planhat's bulk answer: it also comes with 400 and 403
    (https://www.planhat.com/developers/api/http-response-codes)."""
    return isinstance(body, Mapping) and not BULK_ANSWER_KEYS.isdisjoint(body)


# Reads records back by ``_id``: ``{_id: record}`` for those that exist.
ReadBack = Callable[[Sequence[str]], Mapping[str, Mapping[str, Any]]]


def results_for_chunk(
    spec: ModelSpec,
    chunk: Chunk,
    answer: Mapping[str, Any],
    *,
    status: int = 200,
    read_back: ReadBack | None = None,
) -> list[RecordResult]:
    """One result per input record of ``chunk`` from Planhat's bulk answer.

    The shape of an entry is not documented; we tie entries to records by an ``index`` if
    one is given, else by any keyable the entry names. An ``insertsKeys`` entry may name
    only ``_id`` (hull/hull-planhat ``__tests__/_scenarios/account-insert-licenses``).
    Entries naming no key are tied in order when they are all of one kind and as many as
    the records left (that Planhat answers in payload order is assumed); otherwise the
    records written are read back by ``_id`` (``read_back``) to learn their keys. What is
    left is ``UNCONFIRMED``: give every record a ``sourceId`` and this never happens.

    ``status`` is the answer's HTTP status: in a 400 (the payload refused) a record the
    answer does not name as written is ``REJECTED``; in a 403 the writes it names were
    applied, and ``permissionErrors`` entries are ``REJECTED`` ("permission denied: …").
    """
    table = _lookup(spec, chunk.payload)
    found: dict[int, RecordResult] = {}
    loose: list[RecordResult] = []
    # When Planhat reports "nonupdates", "modified" tells the changed ids from the others.
    modified = {str(i) for i in answer.get("modified") or [] if isinstance(i, str)}
    some_unchanged = bool(answer.get("nonupdates"))

    def position_of(entry: Mapping[str, Any]) -> int | None:
        position = entry.get("index")
        if isinstance(position, int) and 0 <= position < len(chunk.payload):
            return position
        return next((table[k] for k in _entry_keys(spec, entry) if k in table), None)

    def position_of_record(record: Mapping[str, Any]) -> int | None:
        """A record read back: its own keys only (its company is an ``_id`` now)."""
        keys = [*record_keys(spec, record)]
        if record.get(spec.external_key) not in (None, ""):
            keys.append(("~" + spec.external_key, str(record[spec.external_key])))
        return next((table[k] for k in keys if k in table), None)

    def place(entry: Mapping[str, Any], result: RecordResult) -> None:
        position = position_of(entry)
        if position is None or position in found:
            loose.append(result)
        else:
            found[position] = result

    for entry in _dicts(answer.get("insertsKeys")):
        place(entry, RecordResult(index=-1, outcome=Outcome.CREATED, id=_id_of(entry)))
    for entry in _dicts(answer.get("updatesKeys")):
        record_id = _id_of(entry)
        changed = not some_unchanged or record_id in modified
        outcome = Outcome.UPDATED if changed else Outcome.UNCHANGED
        place(entry, RecordResult(index=-1, outcome=outcome, id=record_id))
    for name in ("createdErrors", "updatedErrors", "permissionErrors"):
        for entry in _dicts(answer.get(name)):
            message = _message(entry)
            if name == "permissionErrors":
                message = f"permission denied: {message}"
            place(entry, RecordResult(index=-1, outcome=Outcome.REJECTED, message=message))

    left = [p for p in range(len(chunk.payload)) if p not in found]
    # Only a record with a sourceId or external id can be recognised when read back.
    recognisable = any(k[0] != "_id" for p in left for k in record_keys(spec, chunk.payload[p]))
    written = {r.id: r for r in loose if r.ok and r.id}
    if written and read_back and recognisable and not _tie_in_order(loose, len(left)):
        # Ambiguous (some record was also dropped, or refused without a key): learn the
        # keys of the records written from Planhat itself.
        for record_id, record in read_back(list(written)).items():
            position = position_of_record(record)
            if position is not None and position not in found and record_id in written:
                found[position] = written[record_id]
                loose.remove(written[record_id])

    unresolved = [p for p in range(len(chunk.payload)) if p not in found]
    if status == 400 and not any(result.ok for result in loose):
        # A refused payload: what it does not name as written was not written.
        reasons = "; ".join(r.message for r in loose if r.message) or "no reason given"
        refused = RecordResult(
            index=-1, outcome=Outcome.REJECTED, message=f"Planhat refused the payload: {reasons}"
        )
        found.update((p, refused) for p in unresolved)
    elif loose and _tie_in_order(loose, len(unresolved)):
        found.update(zip(unresolved, loose, strict=True))
    elif loose:
        note = "Planhat's answer names no key for this record; give it a sourceId"
        found.update(
            (p, RecordResult(index=-1, outcome=Outcome.UNCONFIRMED, message=note))
            for p in unresolved
        )
    ignored = RecordResult(
        index=-1,
        outcome=Outcome.IGNORED,
        message="Planhat neither inserted, updated nor rejected this record "
        "(it silently drops e.g. endusers without a company and tickets without e-mail)",
    )
    results: list[RecordResult] = []
    for position, members in enumerate(chunk.members):
        result = found.get(position, ignored)
        results.extend(replace(result, index=index) for index in members)
    return results


def _tie_in_order(loose: Sequence[RecordResult], unresolved: int) -> bool:
    """Loose entries can be tied to the records left in order only when that cannot
    mistake one outcome for another: all of one kind, one for each record left."""
    return len({result.outcome for result in loose}) == 1 and len(loose) == unresolved


def rejected_chunk(chunk: Chunk, message: str) -> list[RecordResult]:
    """Every record of a chunk Planhat refused as a whole (a 400 on the payload)."""
    return [
        RecordResult(index=index, outcome=Outcome.REJECTED, message=message)
        for members in chunk.members
        for index in members
    ]


def _id_of(entry: Mapping[str, Any]) -> str | None:
    value = entry.get("_id")
    return str(value) if value else None


def count_outcomes(results: Iterable[RecordResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[str(result.outcome)] = counts.get(str(result.outcome), 0) + 1
    return counts
