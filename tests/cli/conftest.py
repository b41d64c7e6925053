"""The run suite's simulated tenant, for the command line's end-to-end tests."""

from __future__ import annotations

from tests.run.conftest import tenant

__all__ = ["tenant"]
