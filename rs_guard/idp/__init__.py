"""The bundled test IdP (placeholder; built out by the IdP work)."""
