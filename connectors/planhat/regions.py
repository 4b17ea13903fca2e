"""Which Planhat region a token belongs to: ``planhat-sync planhat check``.

Planhat serves each tenant from one regional host: ``api``, ``api-eu``, ``api-eu2``,
``api-eu3`` or ``api-us2`` ``.planhat.com``, and a token sent to another region's host is
refused like a wrong one (shared/reference/planhat-api.md: "a 401 often means the wrong
region"). A token is checked with ``GET /myprofile``; when the configured host refuses it
and that host is one of Planhat's own, the other regional hosts are asked too (the token
goes only to Planhat's hosts), so the answer can say where it belongs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import FatalError, PlanhatError
from connectors.planhat.retry import RetryPolicy

REGIONS: dict[str, str] = {
    "api": "https://api.planhat.com",
    "api-eu": "https://api-eu.planhat.com",
    "api-eu2": "https://api-eu2.planhat.com",
    "api-eu3": "https://api-eu3.planhat.com",
    "api-us2": "https://api-us2.planhat.com",
}

# A check is one call a host: no retry (a failure is the answer), a short wait for a 429.
CHECK_RETRY = RetryPolicy(attempts=1, max_rate_limit_wait=20)

Connect = Callable[[str, str], PlanhatClient]  # (token, base_url) → a client


def _connect(token: str, base_url: str) -> PlanhatClient:
    return PlanhatClient(token, base_url=base_url, retry=CHECK_RETRY)


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenCheck:
    ok: bool
    base_url: str
    region: str | None  # the configured host's region, when it is one of Planhat's
    profile: Mapping[str, Any] = field(default_factory=dict)
    # Refused here: the region (name, host) that accepted it instead, and those asked.
    belongs_to: tuple[str, str] | None = None
    asked: tuple[str, ...] = ()
    error: str | None = None

    def line(self) -> str:
        """One line for a human."""
        where = self.base_url + (f" (region {self.region})" if self.region else "")
        if self.ok:
            return f"ok: the token works on {where} as {_who(self.profile)}"
        if self.belongs_to is not None:
            name, host = self.belongs_to
            return (
                f"{where} refused the token ({self.error}); it belongs to region {name}: "
                f"set PLANHAT_BASE_URL={host}"
            )
        if self.region is not None:
            return (
                f"{where} refused the token ({self.error}), and no other region "
                f"({', '.join(self.asked)}) accepts it: check PLANHAT_API_TOKEN"
            )
        return (
            f"{where} refused the token ({self.error}). A token used against the wrong "
            "region is refused too: is PLANHAT_BASE_URL your region's host "
            f"({', '.join(REGIONS.values())})?"
        )


def _who(profile: Mapping[str, Any]) -> str:
    name = " ".join(str(profile[k]) for k in ("firstName", "lastName") if profile.get(k))
    email = profile.get("email")
    if name and email:
        return f"{name} <{email}>"
    return str(name or email or profile.get("nickName") or profile.get("_id") or "?")


def region_of(base_url: str, regions: Mapping[str, str] = REGIONS) -> str | None:
    url = base_url.rstrip("/")
    return next((name for name, host in regions.items() if host.rstrip("/") == url), None)


def check_token(
    token: str,
    base_url: str,
    *,
    regions: Mapping[str, str] = REGIONS,
    connect: Connect = _connect,
) -> TokenCheck:
    """Ask ``base_url`` who ``token`` is; when it refuses the token and is one of
    ``regions``, ask the other regions which one accepts it."""
    region = region_of(base_url, regions)
    try:
        with connect(token, base_url) as client:
            profile = client.my_profile()
    except FatalError as error:
        if error.status_code not in (401, 403):
            raise
        refused = f"{error.status_code}"
    else:
        return TokenCheck(ok=True, base_url=base_url, region=region, profile=profile)
    if region is None:  # not one of Planhat's hosts: the token goes nowhere else
        return TokenCheck(ok=False, base_url=base_url, region=None, error=refused)
    others = tuple(name for name in regions if name != region)
    for name in others:
        try:
            with connect(token, regions[name]) as client:
                client.my_profile()
        except PlanhatError:
            continue
        return TokenCheck(
            ok=False,
            base_url=base_url,
            region=region,
            belongs_to=(name, regions[name]),
            asked=others,
            error=refused,
        )
    return TokenCheck(ok=False, base_url=base_url, region=region, asked=others, error=refused)
