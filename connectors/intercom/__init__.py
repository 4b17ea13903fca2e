"""The ``intercom`` source: helpdesk tickets mirrored with Planhat, both ways."""

from connectors.intercom.source import SOURCE

__all__ = ["SOURCE"]
