"""The version of rs_guard, in one place (pyproject.toml reads it through hatch)."""

__version__ = "0.1.0"
