"""Tests of the bundled IdP."""
