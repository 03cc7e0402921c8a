"""Tests of the ecosystem: the pytest plugin, the FastAPI example and its Swagger UI."""
