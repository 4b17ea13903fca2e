"""PLANHAT_SYNC_MCP_*: the MCP server's settings (no SDK import: ``web`` reads them at
start-up to decide whether to serve ``/mcp`` at all)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RECEIVER = "http://127.0.0.1:8765"


class McpSettings(BaseSettings):
    """PLANHAT_SYNC_MCP_*: the MCP server's own settings."""

    model_config = SettingsConfigDict(env_prefix="PLANHAT_SYNC_MCP_", extra="ignore")

    writes: bool = False  # PLANHAT_SYNC_MCP_WRITES: write tools may write (else dry runs only)
    token: SecretStr | None = None  # PLANHAT_SYNC_MCP_TOKEN: the bearer token over HTTP
    receiver_url: str = DEFAULT_RECEIVER  # where send_change posts signed events

    def bearer_token(self) -> str | None:
        return self.token.get_secret_value() if self.token else None
