"""The ``zendesk`` source: helpdesk tickets mirrored with Planhat, both ways."""

from connectors.zendesk.source import SOURCE

__all__ = ["SOURCE"]
