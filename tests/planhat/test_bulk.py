"""Bulk upsert planning and answers: pure functions, no transport."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.planhat.bulk import (
    Chunk,
    Key,
    Outcome,
    Record,
    RecordResult,
    plan_chunks,
    record_keys,
    rejected_chunk,
    results_for_chunk,
)
from connectors.planhat.models import MODELS

LICENSES = MODELS["licenses"]
INVOICES = MODELS["invoices"]


def _serialized(chunk: Chunk) -> int:
    return len(json.dumps(chunk.payload, separators=(",", ":")))


def _one_chunk(records: list[Record]) -> Chunk:
    chunks = plan_chunks(LICENSES, records)
    assert len(chunks) == 1
    return chunks[0]


def _answer(**fields: Any) -> dict[str, Any]:
    """A Planhat-shaped bulk answer: every list present, overridden by ``fields``."""
    answer: dict[str, Any] = {
        "created": 0,
        "createdErrors": [],
        "insertsKeys": [],
        "updated": 0,
        "updatedErrors": [],
        "updatesKeys": [],
        "nonupdates": 0,
        "modified": [],
        "upsertedIds": [],
        "permissionErrors": [],
    }
    answer.update(fields)
    return answer


def _view(results: list[RecordResult]) -> list[tuple[int, Outcome, str | None]]:
    return [(result.index, result.outcome, result.id) for result in results]


# --- chunking ---------------------------------------------------------------------------


def test_keyed_records_are_cut_into_chunks_of_at_most_5000() -> None:
    records = [{"sourceId": f"s{i}"} for i in range(12_001)]

    chunks = plan_chunks(LICENSES, records)

    assert [len(chunk.payload) for chunk in chunks] == [5000, 5000, 2001]
    assert chunks[2].members[0] == [10_000]
    assert [index for chunk in chunks for [index] in chunk.members] == list(range(12_001))


@pytest.mark.parametrize("max_items", [0, -1, 5001])
def test_max_items_outside_1_to_5000_is_refused(max_items: int) -> None:
    with pytest.raises(ValueError, match="max_items"):
        plan_chunks(LICENSES, [{"sourceId": "s"}], max_items=max_items)


def test_small_max_bytes_splits_chunks_by_serialized_size() -> None:
    # given 12 records of 18 bytes each: {"sourceId":"s00"}; five of them fill 96 bytes
    records = [{"sourceId": f"s{i:02d}"} for i in range(12)]

    chunks = plan_chunks(LICENSES, records, max_bytes=100)

    assert [len(chunk.payload) for chunk in chunks] == [5, 5, 2]
    assert all(_serialized(chunk) <= 100 for chunk in chunks)


def test_a_single_record_over_max_bytes_is_refused() -> None:
    records = [{"sourceId": "small"}, {"sourceId": "big", "notes": "x" * 200}]

    with pytest.raises(ValueError, match="record 1"):
        plan_chunks(LICENSES, records, max_bytes=100)


def test_merging_duplicates_never_makes_a_chunk_exceed_max_bytes() -> None:
    # given two records with one sourceId, each well under the limit alone
    records = [{"sourceId": "s", "a": "x" * 40}, {"sourceId": "s", "b": "y" * 40}]

    chunks = plan_chunks(LICENSES, records, max_bytes=100)

    # then the payload sent to Planhat still fits
    sizes = [_serialized(chunk) for chunk in chunks]
    assert max(sizes) <= 100, sizes


def test_same_source_id_is_merged_later_fields_win_and_custom_merged_by_key() -> None:
    records = [
        {"sourceId": "s1", "mrr": 10, "product": "Pro", "custom": {"tier": "A", "seats": 3}},
        {"sourceId": "s2", "mrr": 1},
        {"sourceId": "s1", "mrr": 20, "custom": {"seats": 5, "region": "EU"}},
    ]

    chunk = _one_chunk(records)

    assert chunk.payload[0] == {
        "sourceId": "s1",
        "mrr": 20,
        "product": "Pro",
        "custom": {"tier": "A", "seats": 5, "region": "EU"},
    }
    assert chunk.members == [[0, 2], [1]]
    assert len(chunk.payload) == 2


def test_same_external_id_under_different_companies_is_not_merged() -> None:
    records = [
        {"externalId": "lic-1", "companyId": "c1", "mrr": 1},
        {"externalId": "lic-1", "companyId": "c2", "mrr": 2},
        {"externalId": "lic-1", "companyId": "c1", "mrr": 3},
    ]

    chunk = _one_chunk(records)

    assert chunk.members == [[0, 2], [1]]
    assert [item["mrr"] for item in chunk.payload] == [3, 2]


def test_invoices_are_keyed_by_ext_id_within_c_id() -> None:
    assert record_keys(INVOICES, {"extId": "inv-1", "cId": "c1", "externalId": "no"}) == [
        ("extId", "c1", "inv-1")
    ]
    records = [
        {"extId": "inv-1", "cId": "c1", "amountTotal": 1},
        {"extId": "inv-1", "cId": "c2", "amountTotal": 2},
        {"extId": "inv-1", "cId": "c1", "amountTotal": 3},
    ]

    [chunk] = plan_chunks(INVOICES, records)

    assert chunk.members == [[0, 2], [1]]
    assert chunk.payload[0]["amountTotal"] == 3


def test_record_keys_follow_planhats_matching_order() -> None:
    record = {"externalId": "e", "companyId": "c", "sourceId": "s", "_id": "i", "name": "n"}

    assert record_keys(LICENSES, record) == [
        ("_id", "i"),
        ("sourceId", "s"),
        ("externalId", "c", "e"),
    ]
    assert record_keys(MODELS["companies"], {"externalId": "e"}) == [("externalId", "e")]
    assert record_keys(LICENSES, {"sourceId": "", "_id": None}) == []


def test_chunk_is_all_keyed_only_when_every_record_has_a_keyable() -> None:
    assert _one_chunk([{"sourceId": "a"}, {"externalId": "b", "companyId": "c"}]).all_keyed
    assert not _one_chunk([{"sourceId": "a"}, {"name": "no key"}]).all_keyed


def test_an_id_alone_does_not_make_a_chunk_safe_to_resend() -> None:
    # an _id that matches nothing creates a record (bulk-upsert page): a replay, another
    assert not _one_chunk([{"sourceId": "a"}, {"_id": "c" * 24, "mrr": 1}]).all_keyed
    assert _one_chunk([{"_id": "c" * 24, "sourceId": "a"}]).all_keyed


# --- answers ----------------------------------------------------------------------------


def test_every_list_of_the_answer_becomes_the_matching_outcome_in_input_order() -> None:
    # given
    chunk = _one_chunk(
        [
            {"sourceId": "s-new"},
            {"sourceId": "s-changed"},
            {"sourceId": "s-same"},
            {"sourceId": "s-bad"},
            {"externalId": "e-denied", "companyId": "c1"},
            {"sourceId": "s-lost"},
        ]
    )
    answer = _answer(
        created=1,
        insertsKeys=[{"_id": "id-new", "sourceId": "s-new"}],
        upsertedIds=["id-new"],
        updated=2,
        updatesKeys=[
            {"_id": "id-same", "sourceId": "s-same"},
            {"_id": "id-changed", "sourceId": "s-changed"},
        ],
        nonupdates=1,
        modified=["id-changed"],
        createdErrors=[{"sourceId": "s-bad", "message": "companyId is required"}],
        permissionErrors=[{"externalId": "e-denied", "companyId": "c1", "message": "denied"}],
    )

    # when
    results = results_for_chunk(LICENSES, chunk, answer)

    # then
    assert _view(results) == [
        (0, Outcome.CREATED, "id-new"),
        (1, Outcome.UPDATED, "id-changed"),
        (2, Outcome.UNCHANGED, "id-same"),
        (3, Outcome.REJECTED, None),
        (4, Outcome.REJECTED, None),
        (5, Outcome.IGNORED, None),
    ]
    assert results[3].message == "companyId is required"
    assert results[4].message == "permission denied: denied"
    assert results[5].message is not None
    assert [result.ok for result in results] == [True, True, True, False, False, False]


def test_without_nonupdates_every_updated_record_counts_as_updated() -> None:
    chunk = _one_chunk([{"sourceId": "a"}, {"sourceId": "b"}])
    answer = _answer(updated=2, updatesKeys=[{"_id": "1", "sourceId": "a"}, {"_id": "2"}])

    results = results_for_chunk(LICENSES, chunk, answer)

    assert results[0].outcome is Outcome.UPDATED
    # the second entry names no key: tied in order to the one record left
    assert _view(results)[1] == (1, Outcome.UPDATED, "2")


def test_error_entry_may_give_an_index_instead_of_keys() -> None:
    chunk = _one_chunk([{"sourceId": "a"}, {"sourceId": "b"}])
    answer = _answer(
        insertsKeys=[{"_id": "id-a", "sourceId": "a"}],
        updatedErrors=[{"index": 1, "error": "mrr must be a number"}],
    )

    results = results_for_chunk(LICENSES, chunk, answer)

    assert _view(results) == [(0, Outcome.CREATED, "id-a"), (1, Outcome.REJECTED, None)]
    assert results[1].message == "mrr must be a number"


def test_error_entry_may_nest_the_item_under_another_key() -> None:
    chunk = _one_chunk([{"sourceId": "a"}, {"externalId": "e", "companyId": "c"}])
    answer = _answer(
        createdErrors=[
            {"item": {"externalId": "e", "companyId": "c"}, "message": "bad date"},
            {"data": {"sourceId": "a"}, "message": "bad mrr"},
        ]
    )

    results = results_for_chunk(LICENSES, chunk, answer)

    assert [(r.index, r.outcome, r.message) for r in results] == [
        (0, Outcome.REJECTED, "bad mrr"),
        (1, Outcome.REJECTED, "bad date"),
    ]


def test_external_id_answered_without_its_company_still_matches() -> None:
    chunk = _one_chunk([{"externalId": "e1", "companyId": "extid-cus_1"}, {"sourceId": "s"}])
    answer = _answer(
        insertsKeys=[{"_id": "id-s", "sourceId": "s"}, {"_id": "id-e", "externalId": "e1"}]
    )

    results = results_for_chunk(LICENSES, chunk, answer)

    assert _view(results) == [(0, Outcome.CREATED, "id-e"), (1, Outcome.CREATED, "id-s")]


def test_merged_records_share_the_result_of_their_item() -> None:
    chunk = _one_chunk([{"sourceId": "a", "mrr": 1}, {"sourceId": "b"}, {"sourceId": "a"}])
    answer = _answer(
        insertsKeys=[{"_id": "id-a", "sourceId": "a"}],
        updatesKeys=[{"_id": "id-b", "sourceId": "b"}],
    )

    results = sorted(results_for_chunk(LICENSES, chunk, answer), key=lambda r: r.index)

    assert _view(results) == [
        (0, Outcome.CREATED, "id-a"),
        (1, Outcome.UPDATED, "id-b"),
        (2, Outcome.CREATED, "id-a"),
    ]


def test_keyless_records_are_tied_in_order_when_loose_entries_are_of_one_kind() -> None:
    chunk = _one_chunk([{"name": "x"}, {"sourceId": "k"}, {"name": "y"}])
    answer = _answer(
        insertsKeys=[{"_id": "id-x"}, {"_id": "id-k", "sourceId": "k"}, {"_id": "id-y"}]
    )

    results = results_for_chunk(LICENSES, chunk, answer)

    assert _view(results) == [
        (0, Outcome.CREATED, "id-x"),
        (1, Outcome.CREATED, "id-k"),
        (2, Outcome.CREATED, "id-y"),
    ]


def test_keyless_records_are_unconfirmed_when_loose_entries_are_of_mixed_kinds() -> None:
    chunk = _one_chunk([{"name": "x"}, {"sourceId": "k"}, {"name": "y"}])
    answer = _answer(
        insertsKeys=[{"_id": "id-x"}, {"_id": "id-k", "sourceId": "k"}],
        createdErrors=[{"message": "name too long"}],
    )

    results = results_for_chunk(LICENSES, chunk, answer)

    assert _view(results) == [
        (0, Outcome.UNCONFIRMED, None),
        (1, Outcome.CREATED, "id-k"),
        (2, Outcome.UNCONFIRMED, None),
    ]
    assert results[0].message is not None
    assert "sourceId" in results[0].message


def test_id_only_inserts_beside_a_dropped_record_are_read_back_by_id() -> None:
    # given insertsKeys naming only _id (hull-planhat's fixture) and one record dropped
    chunk = _one_chunk([{"sourceId": "a"}, {"sourceId": "dropped"}, {"sourceId": "c"}])
    answer = _answer(insertsKeys=[{"_id": "id-a"}, {"_id": "id-c"}])
    asked: list[list[str]] = []

    def read_back(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        asked.append(list(ids))
        return {"id-c": {"_id": "id-c", "sourceId": "c"}, "id-a": {"_id": "id-a", "sourceId": "a"}}

    # when
    results = results_for_chunk(LICENSES, chunk, answer, read_back=read_back)

    # then
    assert asked == [["id-a", "id-c"]]
    assert _view(results) == [
        (0, Outcome.CREATED, "id-a"),
        (1, Outcome.IGNORED, None),
        (2, Outcome.CREATED, "id-c"),
    ]


def test_id_only_inserts_are_not_read_back_when_the_count_ties_them() -> None:
    chunk = _one_chunk([{"sourceId": "a"}, {"sourceId": "b"}])
    answer = _answer(insertsKeys=[{"_id": "id-a"}, {"_id": "id-b"}])

    def read_back(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        raise AssertionError("no read-back needed")

    results = results_for_chunk(LICENSES, chunk, answer, read_back=read_back)

    assert _view(results) == [(0, Outcome.CREATED, "id-a"), (1, Outcome.CREATED, "id-b")]


def test_keyless_records_are_not_read_back_as_nothing_could_recognise_them() -> None:
    chunk = _one_chunk([{"name": "x"}, {"name": "y"}])
    answer = _answer(insertsKeys=[{"_id": "id-x"}], createdErrors=[{"message": "bad"}])

    def read_back(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        raise AssertionError("a keyless record cannot be recognised when read back")

    results = results_for_chunk(LICENSES, chunk, answer, read_back=read_back)

    assert [r.outcome for r in results] == [Outcome.UNCONFIRMED] * 2


def test_a_record_written_but_not_found_on_read_back_stays_unconfirmed() -> None:
    chunk = _one_chunk([{"sourceId": "a"}, {"sourceId": "b"}])
    answer = _answer(insertsKeys=[{"_id": "id-a"}], createdErrors=[{"message": "bad"}])

    results = results_for_chunk(LICENSES, chunk, answer, read_back=lambda ids: {})

    assert [r.outcome for r in results] == [Outcome.UNCONFIRMED] * 2


def test_in_a_400_what_is_not_named_as_written_is_rejected_with_the_reasons() -> None:
    chunk = _one_chunk([{"sourceId": "a"}, {"sourceId": "b"}, {"name": "keyless"}])
    answer = _answer(
        createdErrors=[{"sourceId": "a", "message": "mrr is required"}, {"message": "too big"}]
    )

    results = results_for_chunk(LICENSES, chunk, answer, status=400)

    assert [(r.outcome, r.message) for r in results] == [
        (Outcome.REJECTED, "mrr is required"),
        (Outcome.REJECTED, "Planhat refused the payload: too big"),
        (Outcome.REJECTED, "Planhat refused the payload: too big"),
    ]


def test_in_a_403_the_writes_named_stand_and_permission_errors_are_rejected() -> None:
    chunk = _one_chunk([{"sourceId": "a"}, {"sourceId": "b"}, {"sourceId": "c"}])
    answer = _answer(
        updatesKeys=[{"_id": "id-a", "sourceId": "a"}],
        updated=1,
        permissionErrors=[{"sourceId": "b", "message": "no permission to create licenses"}],
    )

    results = results_for_chunk(LICENSES, chunk, answer, status=403)

    assert [(r.outcome, r.message) for r in results] == [
        (Outcome.UPDATED, None),
        (Outcome.REJECTED, "permission denied: no permission to create licenses"),
        (Outcome.IGNORED, results[2].message),
    ]


def test_rejected_chunk_rejects_every_input_record_with_the_message() -> None:
    chunk = _one_chunk([{"sourceId": "a"}, {"sourceId": "b"}, {"sourceId": "a"}])

    results = rejected_chunk(chunk, "duplicate key")

    assert sorted(r.index for r in results) == [0, 1, 2]
    assert {(r.outcome, r.message) for r in results} == {(Outcome.REJECTED, "duplicate key")}


# --- properties -------------------------------------------------------------------------

_values = st.integers(min_value=0, max_value=3)
_keyed = st.fixed_dictionaries(
    {"sourceId": st.sampled_from(["s1", "s2", "s3"])},
    optional={
        "mrr": _values,
        "product": st.sampled_from(["Pro", "Team"]),
        "custom": st.dictionaries(st.sampled_from(["tier", "seats"]), _values, max_size=2),
    },
)
_keyless = st.fixed_dictionaries({"name": st.sampled_from(["x", "y"]), "mrr": _values})
_records = st.lists(st.one_of(_keyed, _keyed, _keyless), max_size=30)
_with_external = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "sourceId": st.sampled_from(["s1", "s2"]),
            "externalId": st.sampled_from(["e1", "e2"]),
            "companyId": st.sampled_from(["c1", "c2"]),
            "mrr": _values,
        },
    ),
    max_size=12,
)


def _applied_in_order(records: list[Record]) -> Record:
    """What a series of partial updates leaves: dict update, ``custom`` merged by key."""
    result: Record = {}
    for record in records:
        custom = {**result.get("custom", {}), **record["custom"]} if "custom" in record else None
        result.update(record)
        if custom is not None:
            result["custom"] = custom
    return result


def _keys_of(chunk: Chunk) -> list[Key]:
    return [key for item in chunk.payload for key in record_keys(LICENSES, item)]


@given(records=_records, max_items=st.integers(min_value=1, max_value=6))
def test_plan_chunks_properties(records: list[Record], max_items: int) -> None:
    chunks = plan_chunks(LICENSES, records, max_items=max_items)

    indexes = [index for chunk in chunks for members in chunk.members for index in members]
    assert sorted(indexes) == list(range(len(records)))
    for chunk in chunks:
        assert 1 <= len(chunk.payload) <= max_items
        assert len(chunk.members) == len(chunk.payload)
        keys = _keys_of(chunk)
        assert len(keys) == len(set(keys))
        for item, members in zip(chunk.payload, chunk.members, strict=True):
            assert item == _applied_in_order([records[index] for index in members])


@given(records=_with_external, max_items=st.integers(min_value=1, max_value=6))
@example(  # a merge that moves an item's external key onto another item's (found by CI)
    records=[
        {"sourceId": "s1", "mrr": 0, "companyId": "c2", "externalId": "e1"},
        {"sourceId": "s2", "mrr": 0, "companyId": "c1", "externalId": "e1"},
        {"sourceId": "s1", "mrr": 0, "companyId": "c1"},
    ],
    max_items=5000,
)
@example(  # one item keyed by sourceId, one by externalId, then a record naming both
    records=[
        {"sourceId": "s1"},
        {"externalId": "e1", "companyId": "c1"},
        {"sourceId": "s1", "externalId": "e1", "companyId": "c1"},
    ],
    max_items=5000,
)
def test_no_chunk_names_a_key_twice_when_records_mix_keyables(
    records: list[Record], max_items: int
) -> None:
    chunks = plan_chunks(LICENSES, records, max_items=max_items)

    # then no payload names one key twice (Planhat answers 400 to that)
    for chunk in chunks:
        keys = _keys_of(chunk)
        assert len(keys) == len(set(keys)), chunk.payload
