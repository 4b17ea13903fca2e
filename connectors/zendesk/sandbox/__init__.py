"""A stand-in for Zendesk's REST API v2 and event webhooks (tests, the benchmark, ``dev``)."""

from connectors.zendesk.sandbox.app import ZendeskConfig, create_app

__all__ = ["ZendeskConfig", "create_app"]
