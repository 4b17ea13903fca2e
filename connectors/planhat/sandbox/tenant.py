"""One Planhat tenant's rules: keyables, required fields, references, bulk upsert.

Behaviour follows ``shared/reference/planhat-api.md``. Where Planhat's docs are silent the
choice is the one real clients expect, and says so beside the code. Every error text here
(and the ``{keys…, message}`` shape of a bulk error entry) is the sandbox's own: assumed,
as Planhat documents neither; the client reads only a ``message``/``error`` field.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.planhat.bulk import MAX_BULK_ITEMS, record_keys
from connectors.planhat.models import MODELS, ModelSpec
from connectors.planhat.sandbox.store import Doc, Store

COMPANIES = MODELS["companies"]
ENDUSERS = MODELS["endusers"]
TICKETS = MODELS["tickets"]


class SandboxError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Skip(Exception):
    """Not an error: Planhat drops the record without a word."""


_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))


def new_object_id() -> str:
    """24 hex characters shaped like a MongoDB ObjectId: seconds, random, counter."""
    return f"{int(time.time()):08x}{os.urandom(5).hex()}{next(_counter) % 0xFFFFFF:06x}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _present(doc: Mapping[str, Any], field: str) -> bool:
    return doc.get(field) not in (None, "", [])


class Tenant:
    def __init__(self, store: Store) -> None:
        self.store = store
        # Faults a test may set (POST /_sandbox/faults): operations ("create", "update",
        # "delete") the token may not do per model, as a Service Account's permissions
        # would deny them; and insertsKeys entries carrying only ``_id``.
        self.denied: dict[str, frozenset[str]] = {}
        self.inserts_keys_id_only = False

    # --- addressing -------------------------------------------------------------------

    def find(self, spec: ModelSpec, ref: str) -> Doc | None:
        """A record by ``_id``, ``extid-<externalId>`` or ``srcid-<sourceId>``; custom
        fields have no externalId/sourceId, so only by ``_id`` (CF:
        https://www.planhat.com/developers/api/custom-field)."""
        if not spec.alt_keys:
            return self.store.by_id(spec.name, ref)
        if ref.startswith("extid-"):
            company = "" if spec.company_key is None else None
            return self.store.by_external_id(spec.name, ref[6:], company)
        if ref.startswith("srcid-"):
            return self.store.by_source_id(spec.name, ref[6:])
        return self.store.by_id(spec.name, ref)

    def get(self, spec: ModelSpec, ref: str) -> Doc:
        doc = self.find(spec, ref)
        if doc is None:
            raise SandboxError(404, f"{spec.singular} not found: {ref}")
        return doc

    def _company(self, ref: Any, field: str) -> str:
        doc = self.find(COMPANIES, str(ref))
        if doc is None:
            raise SandboxError(400, f"{field}: no company matches {ref!r}")
        return str(doc["_id"])

    def _company_by_domain(self, domains: Iterable[str]) -> str | None:
        wanted = {d.lower().strip() for d in domains if d}
        for company in self.store.docs(COMPANIES.name):
            if wanted & {str(d).lower() for d in company.get("domains") or []}:
                return str(company["_id"])
        return None

    # --- validation -------------------------------------------------------------------

    def _resolve_company(self, spec: ModelSpec, data: Doc, existing: Doc | None) -> None:
        """Turn a company reference into the company's ``_id``, or refuse the record.

        The e-mail/domain fallbacks place a record that has no company; they never move
        one that has (a partial update must not change a field it did not send).
        """
        key = spec.company_key
        if key is None:
            return
        if _present(data, key):
            data[key] = self._company(data[key], key)
        elif existing is not None and _present(existing, key):
            return
        elif spec is TICKETS and _present(data, "companyExternalId"):
            data[key] = self._company("extid-" + str(data["companyExternalId"]), key)
        elif spec is TICKETS and _present(data, "domains"):
            found = self._company_by_domain(data["domains"])
            if found:
                data[key] = found
        elif spec is ENDUSERS and _present(data, "email"):
            # Without companyId Planhat tries the e-mail's domain (planhat-api.md).
            found = self._company_by_domain([str(data["email"]).rpartition("@")[2]])
            if found:
                data[key] = found

    @staticmethod
    def _check_required(spec: ModelSpec, doc: Doc) -> None:
        for group in spec.required:
            if not any(_present(doc, field) for field in group):
                names = group[0] if len(group) == 1 else "one of " + ", ".join(group)
                raise SandboxError(400, f"{spec.singular}: missing required field {names}")

    @staticmethod
    def _check_values(spec: ModelSpec, doc: Doc) -> None:
        def number(field: str) -> float:
            value = doc.get(field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SandboxError(400, f"{spec.singular}: {field} must be a number")
            return float(value)

        if spec.name == "nps" and _present(doc, "score") and not 0 <= number("score") <= 10:
            raise SandboxError(400, "NPS record: score must be between 0 and 10")
        if spec.name == "sales" and _present(doc, "value") and number("value") <= 0:
            raise SandboxError(400, "sale: value must be greater than 0")
        if (
            spec.name == "timeentries"
            and _present(doc, "hours")
            and not 0.1 <= number("hours") <= 24
        ):
            raise SandboxError(400, "time entry: hours must be between 0.1 and 24")
        if spec.name == "invoices":
            # Invoice dates are integer days since 1970-01-01, not ISO strings.
            for field in ("date", "dueDate", "paidDate"):
                if field in doc and doc[field] is not None and not isinstance(doc[field], int):
                    raise SandboxError(400, f"invoice: {field} must be days since 1970-01-01")

    def _prepare(self, spec: ModelSpec, data: Any, existing: Doc | None) -> Doc:
        """The record as it would be stored, or SandboxError / Skip."""
        if not isinstance(data, dict):
            raise SandboxError(400, f"{spec.singular}: expected a JSON object")
        fields = {k: v for k, v in data.items() if k not in ("_id", "createdAt", "updatedAt")}
        if spec is TICKETS and not _present({**(existing or {}), **fields}, "email"):
            raise Skip  # tickets without an e-mail are silently dropped (planhat-api.md)
        self._resolve_company(spec, fields, existing)
        if existing is None:
            if spec is ENDUSERS and not _present(fields, "companyId"):
                raise Skip  # Planhat silently ignores an enduser it can't place
            doc: Doc = {"_id": new_object_id(), **fields, "createdAt": now_iso()}
            self._check_required(spec, doc)
        else:
            doc = {**existing, **fields}
            # Assumed: an update's ``custom`` object is merged key by key into the record's
            # (PUT is a partial update, planhat-api.md; no source says how deep).
            if isinstance(existing.get("custom"), dict) and isinstance(fields.get("custom"), dict):
                doc["custom"] = {**existing["custom"], **fields["custom"]}
        self._check_values(spec, doc)
        self._check_unique(spec, doc)
        # Planhat bumps updatedAt on every write, even one that changes nothing.
        doc["updatedAt"] = now_iso()
        return doc

    def _check_unique(self, spec: ModelSpec, doc: Doc) -> None:
        # Uniqueness: sourceId per model, externalId per company (UQ:
        # support.planhat.com/en/articles/8146372). That a clash is refused with 400 and
        # this text ("… is taken") is assumed: no source says how Planhat answers it.
        if spec.name_key is not None:
            self._check_unique_name(spec, doc)
        if not spec.alt_keys:
            return
        if _present(doc, "sourceId"):
            other = self.store.by_source_id(spec.name, str(doc["sourceId"]))
            if other is not None and other["_id"] != doc["_id"]:
                raise SandboxError(400, f"{spec.singular}: sourceId {doc['sourceId']!r} is taken")
        if _present(doc, spec.external_key):
            company = str(doc.get(spec.company_key) or "") if spec.company_key else ""
            other = self.store.by_external_id(spec.name, str(doc[spec.external_key]), company)
            if other is not None and other["_id"] != doc["_id"]:
                raise SandboxError(
                    400, f"{spec.singular}: {spec.external_key} {doc[spec.external_key]!r} is taken"
                )

    def _check_unique_name(self, spec: ModelSpec, doc: Doc) -> None:
        """A custom field's name is unique within its parent model: records' ``custom``
        objects are keyed by name (inference; the 400 and its text are assumed)."""
        assert spec.name_key is not None
        name, scope = spec.name_key
        for other in self.store.docs(spec.name):
            if other["_id"] != doc["_id"] and (other.get(name), other.get(scope)) == (
                doc.get(name),
                doc.get(scope),
            ):
                raise SandboxError(
                    400,
                    f"{spec.singular}: {doc.get(scope)} already has one named {doc.get(name)!r}",
                )

    # --- single-record operations -----------------------------------------------------

    def create(self, spec: ModelSpec, data: Any) -> Doc:
        try:
            doc = self._prepare(spec, data, existing=None)
        except Skip:
            raise SandboxError(400, f"{spec.singular}: missing required field companyId") from None
        self.store.save(spec, doc)
        return doc

    def update(self, spec: ModelSpec, ref: str, data: Any) -> Doc:
        existing = self.get(spec, ref)
        try:
            doc = self._prepare(spec, data, existing=existing)
        except Skip:
            raise SandboxError(400, f"{spec.singular}: missing required field email") from None
        self.store.save(spec, doc)
        return doc

    def delete(self, spec: ModelSpec, ref: str) -> dict[str, int]:
        doc = self.get(spec, ref)
        self.store.remove(spec, doc["_id"])
        return {"n": 1, "ok": 1, "deletedCount": 1}

    def list(
        self,
        spec: ModelSpec,
        *,
        limit: int,
        offset: int,
        sort: str | None,
        select: Sequence[str] | None,
        company_refs: Sequence[str] | None,
    ) -> list[Doc]:
        docs: Iterable[Doc] = self.store.docs(spec.name)
        if company_refs and spec.company_key:
            key = spec.company_key
            # Assumed: a filter naming a company that does not exist is a 400, as a
            # reference to one is in a write; Planhat might as well answer [] instead.
            wanted = {self._company(ref, key) for ref in company_refs}
            docs = [doc for doc in docs if doc.get(key) in wanted]
        if sort:
            field = sort.lstrip("-")
            present = [d for d in docs if d.get(field) is not None]
            absent = [d for d in docs if d.get(field) is None]
            present.sort(key=lambda d: _sort_key(d[field]), reverse=sort.startswith("-"))
            docs = present + absent
        page = list(docs)[offset : offset + limit]
        if select:
            fields = {"_id", *select}
            page = [{k: v for k, v in doc.items() if k in fields} for doc in page]
        return page

    # --- bulk upsert ------------------------------------------------------------------

    def bulk_upsert(self, spec: ModelSpec, items: Any) -> tuple[int, dict[str, Any]]:
        """``PUT /<model>`` with an array: (status, Planhat's answer).

        Statuses (https://www.planhat.com/developers/api/http-response-codes): 200 all ok;
        206 some failed; 400 a bad payload ("usually a required key is missing or it's
        duplicated"), its errors in ``createdErrors``/``updatedErrors``; 403 permission
        errors in ``permissionErrors``, the permitted writes applied ("one or all the
        operations"). Inference: 400 when items failed and none was written (206 means
        "some operations were successful"). Assumed: a whole-payload refusal (not an array,
        over 5,000 items, a key named twice) is the same JSON answer with one error entry
        per cause, and nothing is written.
        """
        answer: dict[str, Any] = {
            "created": 0, "createdErrors": [], "insertsKeys": [],
            "updated": 0, "updatedErrors": [], "updatesKeys": [],
            "nonupdates": 0, "modified": [], "upsertedIds": [], "permissionErrors": [],
        }  # fmt: skip
        refusal = _refuse_payload(spec, items)
        if refusal:
            answer["createdErrors"] = refusal
            return 400, answer
        for item in items:
            keys = {k: item[k] for k in spec.keyables if isinstance(item, dict) and k in item}
            try:
                existing = self._match(spec, item)
            except SandboxError as error:
                answer["updatedErrors"].append({**keys, "message": error.message})
                continue
            operation = "create" if existing is None else "update"
            if operation in self.denied.get(spec.name, ()):
                message = f"no permission to {operation} {spec.name}"
                answer["permissionErrors"].append({**keys, "message": message})
                continue
            try:
                doc = self._prepare(spec, item, existing=existing)
            except Skip:
                continue
            except SandboxError as error:
                # Per-record errors as {keys…, message}: the shape is not documented
                # (assumed), nor are the messages' texts.
                errors = "createdErrors" if existing is None else "updatedErrors"
                answer[errors].append({**keys, "message": error.message})
                continue
            self.store.save(spec, doc)
            if existing is None:
                answer["created"] += 1
                # robocorp-planhat's docstring shows {_id, externalId}; hull-planhat's
                # fixture only {_id} for a license sent with externalId: both happen.
                sent = {} if self.inserts_keys_id_only else keys
                answer["insertsKeys"].append({**sent, "_id": doc["_id"]})
                answer["upsertedIds"].append(doc["_id"])
                continue
            answer["updatesKeys"].append({**keys, "_id": doc["_id"]})
            if _same(existing, doc):
                answer["nonupdates"] += 1
            else:
                answer["updated"] += 1
                answer["modified"].append(doc["_id"])
        written = answer["created"] + answer["updated"] + answer["nonupdates"]
        failed = answer["createdErrors"] or answer["updatedErrors"]
        if answer["permissionErrors"]:
            return 403, answer
        if failed:
            return (206 if written else 400), answer
        return 200, answer

    def _match(self, spec: ModelSpec, item: Any) -> Doc | None:
        """Planhat's order: ``_id``, then ``sourceId``, then the external id (the order is
        an inference from robocorp-planhat and the reference). A key that matches nothing
        passes to the next; when none matches the item is inserted: "If the provided key
        doesn't match any existing record, a new record will be created"
        (https://www.planhat.com/developers/api/bulk-upsert). The new record gets a new
        ``_id``, not the unmatched one sent (assumed)."""
        if not isinstance(item, dict):
            return None
        if _present(item, "_id"):
            doc = self.store.by_id(spec.name, str(item["_id"]))
            if doc is not None:
                return doc
        if _present(item, "sourceId"):
            doc = self.store.by_source_id(spec.name, str(item["sourceId"]))
            if doc is not None:
                return doc
        if _present(item, spec.external_key):
            company: str | None = ""
            if spec.company_key:
                company = None
                if _present(item, spec.company_key):
                    company = self._company(item[spec.company_key], spec.company_key)
            return self.store.by_external_id(spec.name, str(item[spec.external_key]), company)
        return None


def _refuse_payload(spec: ModelSpec, items: Any) -> list[dict[str, Any]]:
    """Error entries for a payload refused as a whole, or none."""
    if not isinstance(items, list):
        return [{"message": "bulk upsert expects a JSON array of objects"}]
    if len(items) > MAX_BULK_ITEMS:
        return [{"message": f"bulk upsert takes at most {MAX_BULK_ITEMS} items"}]
    seen: set[tuple[str, ...]] = set()
    twice: list[dict[str, Any]] = []
    for item in items:
        for key in record_keys(spec, item) if isinstance(item, dict) else []:
            if key in seen:
                message = f"duplicate key in payload: {key[0]}={key[-1]}"
                twice.append({key[0]: key[-1], "message": message})
            seen.add(key)
    return twice


def _same(before: Doc, after: Doc) -> bool:
    ignore = ("updatedAt",)
    return {k: v for k, v in before.items() if k not in ignore} == {
        k: v for k, v in after.items() if k not in ignore
    }


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool | int | float):
        return (0, value)
    return (1, str(value))
