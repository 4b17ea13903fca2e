"""The diff rules as a pure function (worker/pipeline/merge.py): properties and examples.

No database: a record is a (pending write, pushed state) pair of values, and a history is
changes folded through ``merge``, with flushes in between where they matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.change import Change, fields_hash
from worker.pipeline.merge import Decision, Outcome, Pending, Pushed, merge, still_needed

Record = tuple[Pending | None, Pushed | None]


def change(version: int, **fields: Any) -> Change:
    return Change(model="licenses", key_field="sourceId", key="s", fields=fields, version=version)


def pushed(version: int, **fields: Any) -> Pushed:
    return Pushed(fields=fields, fields_hash=fields_hash(fields), version=version)


def offer(record: Record, item: Change) -> tuple[Decision, Record]:
    """What ``ingest`` does with a decision, on values: the record after it."""
    pending, held = record
    decision = merge(pending, held, item)
    version = decision.pushed_version
    if held is not None and version is not None and version != held.version:
        held = Pushed(fields=held.fields, fields_hash=held.fields_hash, version=version)
    return decision, (decision.pending, held)


def flush(record: Record) -> Record:
    """A successful write of the pending fields (``_settle``): Planhat holds them now."""
    pending, held = record
    if pending is None:
        return record
    fields = {**(held.fields if held else {}), **pending.fields}
    version = max(held.version if held else pending.version, pending.version)
    return None, Pushed(fields=fields, fields_hash=fields_hash(fields), version=version)


def planhat_after_flush(record: Record) -> tuple[str, int] | None:
    """What Planhat ends up holding once the pending write (if any) goes out."""
    _, held = flush(record)
    return None if held is None else (held.fields_hash, held.version)


# --- scenarios, read from bytes ---------------------------------------------------------
# Each example is one byte string, read as a record's story. One cheap draw per example,
# and all four properties checked on it, is what keeps 2,000 examples near a second:
# Hypothesis spends ~0.3 ms per example (and ~0.07 ms per further draw) on a small
# machine, far more than ``merge`` does.
# Shrinking the bytes (shorter, smaller) shrinks the story (fewer steps, no flushes,
# lower versions and values), and a failure prints the decoded scenario, not the bytes.

# Three names, two values: changes often repeat, undo or equal what was pushed.
NAMES = ("mrr", "product", "status")


def _some_fields(byte: int) -> dict[str, int]:
    """Per name one base-3 digit of the byte: 0 leaves the name out, else value digit - 1."""
    return {name: digit - 1 for i, name in enumerate(NAMES) if (digit := byte // 3**i % 3)}


def _all_fields(byte: int) -> dict[str, int]:
    """The whole record, as a source that sends every field: per name one bit."""
    return {name: byte >> i & 1 for i, name in enumerate(NAMES)}


@dataclass(frozen=True, slots=True)
class Scenario:
    start: Pushed | None  # what was pushed before it all
    # The same (version, fields) byte pairs, read two ways:
    history: tuple[Change | None, ...]  # as changes and flushes (None), any versions
    arrivals: tuple[Change, ...]  # as deliveries: a version seen again is a redelivery
    item: Change  # the next change


def _scenario(data: bytes) -> Scenario:
    # bytes 0-1: the start (nothing pushed for a third of first bytes, 0 among them),
    # 2-3: the next change, then (version, fields) pairs
    start = None if data[0] % 3 == 0 else pushed(data[0] % 8, **_all_fields(data[1]))
    pairs = [(data[i] % 16, data[i + 1]) for i in range(4, len(data) - 1, 2)]
    # a fields byte of 192 or more is a flush in the history
    history = tuple(None if b >= 192 else change(v, **_some_fields(b)) for v, b in pairs)
    # After a push only whole-record changes arrive: with partial ones the order can matter
    # (test_an_unchanged_newer_change_makes_an_older_change_to_another_field_stale).
    by_version: dict[int, Change] = {}
    whole = start is not None
    arrivals = tuple(
        by_version.setdefault(v, change(v, **(_all_fields(b) if whole else _some_fields(b))))
        for v, b in pairs
    )
    return Scenario(start, history, arrivals, change(data[2] % 16, **_some_fields(data[3])))


def replay(start: Pushed | None, history: Sequence[Change | None]) -> Record:
    record: Record = (None, start)
    for step in history:
        record = flush(record) if step is None else offer(record, step)[1]
    return record


def fold(record: Record, changes: Sequence[Change]) -> tuple[Record, int | None]:
    """The record after ``changes`` in this order, and the version of the change whose
    event the pending write names."""
    event = None
    for item in changes:
        decision, record = offer(record, item)
        if decision.takes_event:
            event = item.version
        elif decision.pending is None:
            event = None
    return record, event


# --- the properties -----------------------------------------------------------------------


@settings(max_examples=2000, deadline=None)
@given(scenario=st.binary(min_size=4, max_size=16).map(_scenario))
def test_the_rules_hold_for_any_history(scenario: Scenario) -> None:
    # given a record after any history of changes and flushes
    record = replay(scenario.start, scenario.history)

    # when the next change comes
    decision, after = offer(record, scenario.item)

    # then it keeps each rule, and deliveries in any order agree
    _check_idempotent(after, scenario.item)
    _check_never_back_in_time(record, scenario.item, decision, after)
    _check_no_call_without_a_difference(record, scenario.item, after)
    _check_order_independent(scenario.start, scenario.arrivals)


def _check_idempotent(after: Record, item: Change) -> None:
    # the same change again (a redelivered event, a replay) changes nothing
    again, twice = offer(after, item)
    assert again.outcome in (Outcome.STALE, Outcome.UNCHANGED)
    assert not again.takes_event
    assert twice == after


def _check_never_back_in_time(
    record: Record, item: Change, decision: Decision, after: Record
) -> None:
    (pending, held), (pending_after, held_after) = record, after
    # a change older than what was pushed is stale and changes nothing
    if held is not None and item.version < held.version:
        assert decision.outcome is Outcome.STALE
        assert after == record
    # and no version goes down: not the pushed one, the pending one, nor a field's
    if held is not None:
        assert held_after is not None
        assert held_after.version >= held.version
    if pending is not None and pending_after is not None:
        assert pending_after.version >= pending.version
        assert all(pending_after.field_versions[k] >= v for k, v in pending.field_versions.items())


def _check_no_call_without_a_difference(record: Record, item: Change, after: Record) -> None:
    pending, held = record
    # a change repeating (part of) what was pushed queues nothing
    if held is not None and pending is None:
        same = replace(item, fields={k: held.fields[k] for k in item.fields if k in held.fields})
        decision, unchanged = offer(record, same)
        assert decision.outcome in (Outcome.STALE, Outcome.UNCHANGED)
        assert unchanged[0] is None
    # and whatever is left pending is a write a flush would still send (the same rule)
    if after[0] is not None:
        assert still_needed(after[0], after[1])


def _check_order_independent(start: Pushed | None, arrivals: Sequence[Change]) -> None:
    # changes with distinct versions, some delivered twice, in any order, give what one
    # delivery of each in version order gives: the same pending write, naming the same
    # event, and the same record in Planhat once it is flushed
    once_each = {item.version: item for item in arrivals}
    in_order = [once_each[version] for version in sorted(once_each)]
    arrived, event = fold((None, start), arrivals)
    expected, expected_event = fold((None, start), in_order)
    assert (arrived[0], event) == (expected[0], expected_event)
    assert planhat_after_flush(arrived) == planhat_after_flush(expected)
    if start is None and in_order:  # per field, the value of the newest change naming it
        newest: dict[str, int] = {}
        for item in in_order:
            newest.update(item.fields)
        last = in_order[-1].version
        assert arrived[0] is not None
        assert (arrived[0].fields, arrived[0].version, event) == (newest, last, last)


# --- the rules, by example ----------------------------------------------------------------


def test_a_change_older_than_what_was_pushed_is_stale() -> None:
    decision = merge(None, pushed(5, mrr=10), change(4, mrr=99))

    assert (decision.outcome, decision.pending, decision.pushed_version) == (
        Outcome.STALE,
        None,
        5,
    )


def test_a_change_as_new_as_what_was_pushed_is_not_stale() -> None:
    # Two events of one source moment (same timestamp) may both carry news.
    decision = merge(None, pushed(5, mrr=10), change(5, product="Pro"))

    assert decision.outcome is Outcome.NEW


def test_a_change_planhat_already_has_raises_the_pushed_version() -> None:
    # Later changes older than this one are stale, though it cost no call.
    decision = merge(None, pushed(5, mrr=10, product="Pro"), change(7, mrr=10))

    assert (decision.outcome, decision.pending, decision.pushed_version) == (
        Outcome.UNCHANGED,
        None,
        7,
    )


def test_a_new_change_queues_a_write_naming_its_event() -> None:
    decision = merge(None, pushed(1, mrr=10), change(2, mrr=20))

    assert decision.outcome is Outcome.NEW
    assert decision.pending == Pending(fields={"mrr": 20}, field_versions={"mrr": 2}, version=2)
    assert (decision.pushed_version, decision.takes_event) == (1, True)


def test_an_older_change_only_fills_fields_the_pending_write_lacks_and_keeps_its_event() -> None:
    pending = Pending(fields={"mrr": 30}, field_versions={"mrr": 3}, version=3)

    decision = merge(pending, None, change(2, mrr=20, product="Pro"))

    assert decision.outcome is Outcome.MERGED
    assert decision.pending == Pending(
        fields={"mrr": 30, "product": "Pro"}, field_versions={"mrr": 3, "product": 2}, version=3
    )
    assert not decision.takes_event


def test_a_newer_change_repeating_the_pending_value_still_raises_its_field_version() -> None:
    # Or an older change arriving later would win the field (found by Hypothesis).
    pending = Pending(fields={"mrr": 0}, field_versions={"mrr": 3}, version=6)

    decision = merge(pending, None, change(5, mrr=0))

    assert decision.outcome is Outcome.MERGED
    assert decision.pending == Pending(fields={"mrr": 0}, field_versions={"mrr": 5}, version=6)
    assert merge(decision.pending, None, change(4, mrr=1)).outcome is Outcome.UNCHANGED


def test_a_duplicate_of_the_pending_write_is_unchanged() -> None:
    pending = Pending(fields={"mrr": 20}, field_versions={"mrr": 2}, version=2)

    decision = merge(pending, None, change(2, mrr=20))

    assert (decision.outcome, decision.pending, decision.takes_event) == (
        Outcome.UNCHANGED,
        pending,
        False,
    )


def test_a_change_undone_before_the_flush_drops_the_write_and_raises_the_pushed_version() -> None:
    pending = Pending(fields={"mrr": 20}, field_versions={"mrr": 2}, version=2)

    decision = merge(pending, pushed(1, mrr=10), change(3, mrr=10))

    assert (decision.outcome, decision.pending, decision.pushed_version) == (
        Outcome.UNDONE,
        None,
        3,
    )


def test_an_unchanged_newer_change_makes_an_older_change_to_another_field_stale() -> None:
    # Today's rule, pinned: the pushed version is one number for the whole record, so a
    # change naming only ``mrr`` (already pushed) also outdates an older ``product``
    # change. Had they arrived the other way round, product=B would be written.
    held = pushed(1, mrr=10, product="A")

    _, record = offer((None, held), change(3, mrr=10))
    decision, _ = offer(record, change(2, product="B"))

    assert decision.outcome is Outcome.STALE
    other_way, _ = fold((None, held), [change(2, product="B"), change(3, mrr=10)])
    assert other_way[0] is not None
    assert other_way[0].fields == {"product": "B", "mrr": 10}


def test_a_claimed_write_is_still_needed_unless_stale_or_already_pushed() -> None:
    write = Pending(fields={"mrr": 20}, field_versions={"mrr": 4}, version=4)

    assert still_needed(write, None)
    assert still_needed(write, pushed(4, mrr=10))
    assert not still_needed(write, pushed(5, mrr=10))  # something newer went out
    assert not still_needed(write, pushed(3, mrr=20, product="Pro"))  # Planhat has it
