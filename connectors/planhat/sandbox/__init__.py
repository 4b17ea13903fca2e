"""A faithful stand-in for the Planhat API, for tests, benchmarks and the embedded default."""

from connectors.planhat.sandbox.app import SandboxConfig, create_app

__all__ = ["SandboxConfig", "create_app"]
