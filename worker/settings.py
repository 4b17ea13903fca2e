"""Settings from the environment (pydantic-settings): one place that reads os.environ."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.planhat.client import DEFAULT_BASE_URL

# Sent when no token is set and the base URL is this machine's sandbox, which accepts any
# non-empty bearer token. Never sent anywhere else.
SANDBOX_TOKEN = "sandbox"  # noqa: S105 - not a secret: the sandbox takes any token


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    planhat_api_token: SecretStr | None = None
    planhat_base_url: str = DEFAULT_BASE_URL
    planhat_sync_log_level: str = "warning"

    def planhat_token(self) -> str:
        """The token to send: the configured one, or the sandbox's when talking to it."""
        if self.planhat_api_token and self.planhat_api_token.get_secret_value():
            return self.planhat_api_token.get_secret_value()
        if is_local(self.planhat_base_url):
            return SANDBOX_TOKEN
        raise MissingTokenError(
            "PLANHAT_API_TOKEN is not set. Create one in Planhat (Settings → Service "
            "Accounts), or point PLANHAT_BASE_URL at a sandbox (planhat-sync sandbox)."
        )


class MissingTokenError(RuntimeError):
    pass


def is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
