"""The ``planhat`` source: changes made in Planhat, hinted by Planhat's own Automations."""

from connectors.planhat_source.source import SOURCE

__all__ = ["SOURCE"]
