"""The ``standard`` source: any system that signs a Standard Webhook can push any model."""

from connectors.standard.source import SOURCE

__all__ = ["SOURCE"]
