"""``httpx.get``/``post``/… for tests, without httpx's per-call cost.

Each module-level ``httpx.post`` builds a ``Client`` and with it a new TLS context (the CA
bundle read again: ~48 ms of CPU), even for plain http to a local stand-in; a test that
posts 1,000 webhooks spent most of its time there. These build the client on the shared
context (connectors/tls.py): same requests, same answers.
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.tls import tls


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    timeout = kwargs.pop("timeout", httpx.Timeout(5.0))  # httpx.request's default
    with httpx.Client(verify=tls(), timeout=timeout) as client:
        return client.request(method, url, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> httpx.Response:
    return request("PUT", url, **kwargs)


def delete(url: str, **kwargs: Any) -> httpx.Response:
    return request("DELETE", url, **kwargs)
