"""A stand-in for Intercom's REST API (tickets) and its webhooks (tests, benchmark, ``dev``)."""

from connectors.intercom.sandbox.app import IntercomConfig, create_app

__all__ = ["IntercomConfig", "create_app"]
