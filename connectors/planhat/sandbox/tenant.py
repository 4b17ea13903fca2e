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
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.planhat.generated import generated_fields, without_generated
from connectors.planhat.models import MODELS, ModelSpec
from connectors.planhat.sandbox import invoices
from connectors.planhat.sandbox.bulk_answers import new_answer, refuse_payload, same, status_of
from connectors.planhat.sandbox.checks import check_custom_values, check_required, check_values
from connectors.planhat.sandbox.contacts import Contacts
from connectors.planhat.sandbox.derived import Derived, stamp
from connectors.planhat.sandbox.errors import SandboxError, Skip, present
from connectors.planhat.sandbox.store import Doc, Store

COMPANIES = MODELS["companies"]
CONVERSATIONS = MODELS["conversations"]
CUSTOM_FIELDS = MODELS["customfields"]
ENDUSERS = MODELS["endusers"]
INVOICES = MODELS["invoices"]
TICKETS = MODELS["tickets"]


_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))


def new_object_id() -> str:
    """24 hex characters shaped like a MongoDB ObjectId: seconds, random, counter."""
    return f"{int(time.time()):08x}{os.urandom(5).hex()}{next(_counter) % 0xFFFFFF:06x}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _settable(spec: ModelSpec, fields: Doc) -> Doc:
    """What Planhat keeps of the fields a client sent: where the registry lists a model's
    fields (invoices), any other field is dropped without a word (assumed: Planhat's
    records look like Mongoose documents, ``__v`` in hull-planhat's and laravel-planhat's
    fixtures, whose schemas drop unknown paths; an invoice's ``date`` is lost on a real
    tenant, shared/reference/planhat-fidelity-audit.md row 18). What Planhat generates is
    left out before (``without_generated``): ignored, its page says nothing of a refusal.
    """
    return {k: v for k, v in fields.items() if spec.fields is None or k in spec.fields}


def _home(spec: ModelSpec) -> ModelSpec:
    """Where a model's records are kept: tickets are conversations with ``type: "ticket"``
    (https://www.planhat.com/developers/api/ticket; audit row 15)."""
    return CONVERSATIONS if spec is TICKETS else spec


def _mine(spec: ModelSpec, doc: Doc | None) -> Doc | None:
    """``doc`` if it is a record of ``spec`` (a conversation is a ticket by its type)."""
    if doc is not None and spec is TICKETS and doc.get("type") != "ticket":
        return None
    return doc


class Tenant:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.invoice_numbers = invoices.InvoiceNumbers(store)
        self.contacts = Contacts(store)
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
        home = _home(spec).name
        if ref.startswith("extid-"):
            company = "" if spec.company_key is None else None
            return _mine(spec, self.store.by_external_id(home, ref[6:], company))
        if ref.startswith("srcid-"):
            return _mine(spec, self.store.by_source_id(home, ref[6:]))
        return _mine(spec, self.store.by_id(home, ref))

    def get(self, spec: ModelSpec, ref: str) -> Doc:
        doc = self.find(spec, ref)
        if doc is None:
            raise SandboxError(404, f"{spec.singular} not found: {ref}")
        return doc

    def read(self, spec: ModelSpec, ref: str) -> Doc:
        """``GET /<model>/<ref>``: the record as Planhat shows it, computed fields and all."""
        return Derived(self.store).show(spec, self.get(spec, ref))

    def count(self, spec: ModelSpec) -> int:
        if spec is TICKETS:
            return sum(1 for doc in self.store.docs(CONVERSATIONS.name) if _mine(spec, doc))
        return self.store.count(spec.name)

    def _company(self, ref: Any, field: str) -> str:
        doc = self.find(COMPANIES, str(ref))
        if doc is None:
            raise SandboxError(400, f"{field}: no company matches {ref!r}")
        return str(doc["_id"])

    # --- validation -------------------------------------------------------------------

    def _resolve_company(self, spec: ModelSpec, data: Doc, existing: Doc | None) -> None:
        """Turn a company reference into the company's ``_id``, or refuse the record.

        The e-mail/domain fallbacks place a record that has no company; they never move
        one that has (a partial update must not change a field it did not send).
        """
        key = spec.company_key
        if key is None:
            return
        if present(data, key):
            data[key] = self._company(data[key], key)
            return
        if existing is not None and present(existing, key):
            return
        if spec in (ENDUSERS, TICKETS):  # placed by their e-mail (sandbox/contacts.py)
            found = self.contacts.place(spec, data, lambda ref: self._company(ref, key))
            if found:
                data[key] = found

    def _prepare(self, spec: ModelSpec, data: Any, existing: Doc | None) -> Doc:
        """The record as it would be stored, or SandboxError / Skip."""
        if not isinstance(data, dict):
            raise SandboxError(400, f"{spec.singular}: expected a JSON object")
        # What Planhat writes itself (its id, timestamps, computed fields) is not taken from
        # the caller (connectors/planhat/generated.py); that it is ignored, not refused, is
        # assumed.
        fields = _settable(spec, without_generated(spec.name, data))
        if spec is TICKETS:
            if not present({**(existing or {}), **fields}, "email"):
                raise Skip  # "Items without email will be silently dropped" (_tickets.md)
            # A conversation whose type Planhat sets (planhat.com/developers/api/ticket); a
            # type the caller sends is overwritten: assumed.
            fields["type"] = "ticket"
        self._resolve_company(spec, fields, existing)
        if existing is None:
            if spec is ENDUSERS and not present(fields, "companyId"):
                raise Skip  # ignored (help.planhat.com/en/articles/9586991)
            doc: Doc = {"_id": new_object_id(), **fields}
            check_required(spec, doc)
        else:
            doc = {**existing, **fields}
            # Assumed: an update's ``custom`` object is merged key by key into the record's
            # (PUT is a partial update, planhat-api.md; no source says how deep).
            if isinstance(existing.get("custom"), dict) and isinstance(fields.get("custom"), dict):
                doc["custom"] = {**existing["custom"], **fields["custom"]}
        check_values(spec, doc)
        check_custom_values(spec, fields.get("custom"), self.store.docs(CUSTOM_FIELDS.name))
        self._check_unique(spec, doc)
        stamp(spec, doc, existing, now_iso())
        if spec is INVOICES:
            company = self.store.by_id(COMPANIES.name, str(doc.get("cId")))
            invoices.fill_in(
                doc,
                existing,
                company_name=None if company is None else company.get("name"),
                number=self.invoice_numbers,
            )
        return doc

    def _save(self, spec: ModelSpec, doc: Doc) -> None:
        """Store a prepared record, and what Planhat does after such a write."""
        self.store.save(_home(spec), doc)
        if spec is ENDUSERS:
            self.contacts.fill_domains(doc, now_iso())
        if spec is TICKETS:
            self._ticket_enduser(doc)

    def _ticket_enduser(self, ticket: Doc) -> None:
        """A ticket may create its enduser: "If the email of a ticket doesn't match any user
        in Planhat, but there is enough information to create a new user, then Planhat will
        create a new user, link it to the corresponding customer" (planhat/docs
        source/includes/_tickets.md). Enough information is taken to be a company."""
        if not present(ticket, "companyId") or self.store.endusers_by_email(str(ticket["email"])):
            return
        data = {"email": ticket["email"], "companyId": ticket["companyId"]}
        try:
            self._save(ENDUSERS, self._prepare(ENDUSERS, data, existing=None))
        except (Skip, SandboxError):
            return

    def _check_unique(self, spec: ModelSpec, doc: Doc) -> None:
        # Uniqueness: sourceId per model, externalId per company (UQ:
        # support.planhat.com/en/articles/8146372). That a clash is refused with 400 and
        # this text ("… is taken") is assumed: no source says how Planhat answers it.
        if spec.name_key is not None:
            self._check_unique_name(spec, doc)
        if not spec.alt_keys:
            return
        home = _home(spec).name
        if present(doc, "sourceId"):
            other = self.store.by_source_id(home, str(doc["sourceId"]))
            if other is not None and other["_id"] != doc["_id"]:
                raise SandboxError(400, f"{spec.singular}: sourceId {doc['sourceId']!r} is taken")
        if present(doc, spec.external_key):
            company = str(doc.get(spec.company_key) or "") if spec.company_key else ""
            other = self.store.by_external_id(home, str(doc[spec.external_key]), company)
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
            # A single create Planhat would ignore: a 400 here is assumed (the sources
            # describe only the silence of a bulk upsert).
            raise SandboxError(400, f"{spec.singular}: missing required field companyId") from None
        self._save(spec, doc)
        return Derived(self.store).show(spec, doc)

    def update(self, spec: ModelSpec, ref: str, data: Any) -> Doc:
        existing = self.get(spec, ref)
        try:
            doc = self._prepare(spec, data, existing=existing)
        except Skip:
            raise SandboxError(400, f"{spec.singular}: missing required field email") from None
        self._save(spec, doc)
        return Derived(self.store).show(spec, doc)

    def delete(self, spec: ModelSpec, ref: str) -> dict[str, int]:
        doc = self.get(spec, ref)
        self.store.remove(_home(spec), doc["_id"])
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
        docs: Iterable[Doc] = self.store.docs(_home(spec).name)
        if spec is TICKETS:
            docs = [doc for doc in docs if _mine(spec, doc)]
        derived = Derived(self.store)
        if sort and sort.lstrip("-") in generated_fields(spec.name):
            docs = [derived.show(spec, doc) for doc in docs]  # sorted by a computed field
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
        page = [derived.show(spec, doc) for doc in list(docs)[offset : offset + limit]]
        if select:
            fields = {"_id", *select}
            page = [{k: v for k, v in doc.items() if k in fields} for doc in page]
        return page

    # --- bulk upsert ------------------------------------------------------------------

    def bulk_upsert(self, spec: ModelSpec, items: Any) -> tuple[int, dict[str, Any]]:
        """``PUT /<model>`` with an array: (status, Planhat's answer; ``bulk_answers``)."""
        answer = new_answer()
        if spec is TICKETS and isinstance(items, dict):
            items = [items]  # "either a single JSON object, or an array" (_tickets.md)
        refusal = refuse_payload(spec, items)
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
            self._save(spec, doc)
            if existing is None:
                answer["created"] += 1
                # robocorp-planhat's docstring shows {_id, externalId}; hull-planhat's
                # fixture only {_id} for a license sent with externalId: both happen.
                sent = {} if self.inserts_keys_id_only else keys
                answer["insertsKeys"].append({**sent, "_id": doc["_id"]})
                answer["upsertedIds"].append(doc["_id"])
                continue
            answer["updatesKeys"].append({**keys, "_id": doc["_id"]})
            if same(existing, doc):
                answer["nonupdates"] += 1
            else:
                answer["updated"] += 1
                answer["modified"].append(doc["_id"])
        return status_of(answer), answer

    def _match(self, spec: ModelSpec, item: Any) -> Doc | None:
        """Planhat's order: ``_id``, then ``sourceId``, then the external id (the order is
        an inference from robocorp-planhat and the reference). A key that matches nothing
        passes to the next; when none matches the item is inserted: "If the provided key
        doesn't match any existing record, a new record will be created"
        (https://www.planhat.com/developers/api/bulk-upsert). The new record gets a new
        ``_id``, not the unmatched one sent (assumed)."""
        if not isinstance(item, dict):
            return None
        home = _home(spec).name  # a ticket's keys are its conversation's: assumed
        if present(item, "_id"):
            doc = self.store.by_id(home, str(item["_id"]))
            if doc is not None:
                return doc
        if present(item, "sourceId"):
            doc = self.store.by_source_id(home, str(item["sourceId"]))
            if doc is not None:
                return doc
        if present(item, spec.external_key):
            company: str | None = ""
            if spec.company_key:
                company = None
                if present(item, spec.company_key):
                    company = self._company(item[spec.company_key], spec.company_key)
            doc = self.store.by_external_id(home, str(item[spec.external_key]), company)
            if doc is not None:
                return doc
        own_key = present(item, "sourceId") or present(item, spec.external_key)
        if spec is ENDUSERS and not own_key:
            # The e-mail, when one enduser has it and the item names no key of its own:
            # e-mail is "Keyable (if unique)", and endusers may share an e-mail "provided
            # externalId or sourceId is unique" (support.planhat.com/en/articles/8146372).
            return self.contacts.enduser_by_email(item.get("email"))
        return None


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool | int | float):
        return (0, value)
    return (1, str(value))
