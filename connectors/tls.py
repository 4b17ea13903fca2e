"""One TLS context for every HTTP client this worker makes.

httpx builds a fresh ``ssl.SSLContext`` for each ``Client`` it is not given one, loading
the CA bundle every time: about 48 ms of CPU per client on this project's machines, paid
per completed Zendesk or Intercom event, per write-back run, per poll. A context is safe
to share between clients and threads (Python's ssl docs; httpx's "SSL" guide passes one
as ``verify``), so it is made once, verifying certificates as httpx's default does.
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def tls() -> ssl.SSLContext:
    """The shared client context: certifi's CA bundle, hostnames checked (httpx's default)."""
    return httpx.create_ssl_context()
