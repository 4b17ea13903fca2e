"""Planhat and the sync as tools for AI agents: an MCP server (the official ``mcp`` SDK, v2).

- ``planhat_tools``: one tool per operation of every model in the registry
  (``connectors/planhat/models.py``), named ``verb_model`` (``list_companies``);
- ``sync_tools``: status, an event's or a record's story, dead letters, replay, send;
- ``context``: what every tool shares: the state store, the connections, the rate budget
  per Planhat token, and whether writes are on;
- ``server``: the ``MCPServer`` built from them (``planhat-sync mcp`` runs it on stdio);
- ``http``: the same server over streamable HTTP, behind a bearer token, in ``web``.

Named ``mcp_server``, not ``mcp``: the SDK's own package is ``mcp``, and a module path
``worker.mcp`` next to it reads as the SDK in tracebacks and imports.
"""
