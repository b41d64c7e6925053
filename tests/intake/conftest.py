"""Fixtures for the intake tests: fixture paths, a catalog like a tenant's, a CSV writer."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from batch.intake.catalog import Catalog
from tests.intake.intakekit import FIXTURES, TENANT_PARTS, tenant_skus  # noqa: F401


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The shipped reference merged with the test tenant."""
    return Catalog.load(tenant_skus())


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write rows (first is the header) to a UTF-8 CSV and return its path."""

    def _write(rows: Sequence[Sequence[str]], name: str = "input.csv") -> Path:
        path = tmp_path / name
        with path.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(rows)
        return path

    return _write
