"""The receiver's limits: how long it waits, and for how much, before it says no.

An unauthenticated client must not tie the receiver up, and a database that hangs must
not hold a sender past its own timeout (Zendesk waits 12 s, Chargebee 20 s; see
reference/source-webhooks.md): past each bound the answer is a refusal that says why.
Each is a ``PLANHAT_SYNC_WEB_<NAME>`` setting (``worker.runtime.settings.WebSettings``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverLimits:
    # Seconds a webhook waits for the database (connection, INSERT) before it is a 503
    # with Retry-After: nothing was stored, the sender tries again later.
    database_wait: float = 5.0
    retry_after: int = 5  # seconds, in the Retry-After of a 503
