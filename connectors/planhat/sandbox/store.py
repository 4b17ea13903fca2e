"""Where the sandbox keeps records: memory, with an optional SQLite file behind it.

Every record lives in memory (a dict per model, in insertion order, like Planhat's default
order by ``_id``) with indexes for the keyables. With a path, each change is also written
to SQLite and loaded back on start, so a restarted sandbox keeps its data as Planhat would.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from connectors.planhat.models import MODELS, ModelSpec

Doc = dict[str, Any]
ENDUSERS = "endusers"


class Store:
    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._docs: dict[str, dict[str, Doc]] = {name: {} for name in MODELS}
        self._by_source: dict[str, dict[str, str]] = {name: {} for name in MODELS}
        # (company _id or "", external id) → _id; external ids are unique per company.
        self._by_external: dict[str, dict[tuple[str, str], str]] = {name: {} for name in MODELS}
        # An enduser's e-mail, lower case → the endusers with it (e-mail is a key when unique).
        self._by_email: dict[str, dict[str, None]] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            # The server runs in its own thread; all access goes through self._lock.
            self._db = sqlite3.connect(os.fspath(path), check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS records ("
                " model TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,"
                " seq INTEGER PRIMARY KEY AUTOINCREMENT, UNIQUE (model, id))"
            )
            self._db.commit()
            for model, doc in self._db.execute("SELECT model, doc FROM records ORDER BY seq"):
                if model in MODELS:
                    self._index(MODELS[model], json.loads(doc))

    # --- reads ------------------------------------------------------------------------

    def docs(self, model: str) -> Iterator[Doc]:
        yield from list(self._docs[model].values())

    def count(self, model: str) -> int:
        return len(self._docs[model])

    def by_id(self, model: str, record_id: str) -> Doc | None:
        return self._docs[model].get(record_id)

    def by_source_id(self, model: str, source_id: str) -> Doc | None:
        record_id = self._by_source[model].get(source_id)
        return None if record_id is None else self._docs[model][record_id]

    def by_external_id(self, model: str, external_id: str, company: str | None) -> Doc | None:
        """With a company: that company's record. Without: the first record with that id."""
        table = self._by_external[model]
        if company is not None:
            record_id = table.get((company, external_id))
        else:
            record_id = next((i for (_, e), i in table.items() if e == external_id), None)
        return None if record_id is None else self._docs[model][record_id]

    def endusers_by_email(self, email: str) -> list[Doc]:
        """The endusers with this e-mail, whatever its case."""
        ids = self._by_email.get(email.strip().lower(), {})
        return [self._docs[ENDUSERS][record_id] for record_id in ids]

    # --- writes -----------------------------------------------------------------------

    def save(self, spec: ModelSpec, doc: Doc) -> None:
        with self._lock:
            old = self._docs[spec.name].get(doc["_id"])
            if old is not None:
                # Only the key indexes move: the record keeps its place in the default order.
                self._unindex_keys(spec, old)
            self._index(spec, doc)
            if self._db is not None:
                self._db.execute(
                    "INSERT INTO records (model, id, doc) VALUES (?, ?, ?)"
                    " ON CONFLICT (model, id) DO UPDATE SET doc = excluded.doc",
                    (spec.name, doc["_id"], json.dumps(doc)),
                )

    def remove(self, spec: ModelSpec, record_id: str) -> None:
        with self._lock:
            old = self._docs[spec.name].get(record_id)
            if old is None:
                return
            self._unindex(spec, old)
            if self._db is not None:
                self._db.execute(
                    "DELETE FROM records WHERE model = ? AND id = ?", (spec.name, record_id)
                )

    def commit(self) -> None:
        """Make the writes of one request durable at once (one fsync, not one per record)."""
        with self._lock:
            if self._db is not None:
                self._db.commit()

    def clear(self) -> None:
        with self._lock:
            for table in (self._docs, self._by_source, self._by_external):
                for name in table:
                    table[name].clear()
            self._by_email.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM records")
                self._db.commit()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.commit()
                self._db.close()
                self._db = None

    # --- indexes ----------------------------------------------------------------------

    def _index(self, spec: ModelSpec, doc: Doc) -> None:
        self._docs[spec.name][doc["_id"]] = doc
        if not spec.alt_keys:  # custom fields: a sourceId there is a plain field
            return
        if doc.get("sourceId") not in (None, ""):
            self._by_source[spec.name][str(doc["sourceId"])] = doc["_id"]
        if doc.get(spec.external_key) not in (None, ""):
            company = str(doc.get(spec.company_key) or "") if spec.company_key else ""
            self._by_external[spec.name][(company, str(doc[spec.external_key]))] = doc["_id"]
        if spec.name == ENDUSERS and isinstance(doc.get("email"), str) and doc["email"]:
            self._by_email.setdefault(doc["email"].strip().lower(), {})[doc["_id"]] = None

    def _unindex(self, spec: ModelSpec, doc: Doc) -> None:
        self._docs[spec.name].pop(doc["_id"], None)
        self._unindex_keys(spec, doc)

    def _unindex_keys(self, spec: ModelSpec, doc: Doc) -> None:
        if not spec.alt_keys:
            return
        if doc.get("sourceId") not in (None, ""):
            self._by_source[spec.name].pop(str(doc["sourceId"]), None)
        if doc.get(spec.external_key) not in (None, ""):
            company = str(doc.get(spec.company_key) or "") if spec.company_key else ""
            self._by_external[spec.name].pop((company, str(doc[spec.external_key])), None)
        if spec.name == ENDUSERS and isinstance(doc.get("email"), str) and doc["email"]:
            email = doc["email"].strip().lower()
            self._by_email.get(email, {}).pop(doc["_id"], None)
            if not self._by_email.get(email, True):
                del self._by_email[email]
