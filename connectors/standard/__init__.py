"""The ``standard`` source: any system that signs a Standard Webhook can push any model."""

from connectors.standard.mapping import SOURCE

__all__ = ["SOURCE"]
