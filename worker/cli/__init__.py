"""The ``planhat-sync`` command line."""

from worker.cli.main import app, main

__all__ = ["app", "main"]
