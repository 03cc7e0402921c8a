"""rs_guard: OAuth 2.0 resource-server middleware for ASGI, with a bundled test IdP."""

__version__ = "0.1.0"
