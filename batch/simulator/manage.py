"""Simulated tenant, housekeeping: reset to the sample (or a generated tenant) and describe.

Both work on the state directory without starting the server, so ``simulator reset`` and
``simulator show`` are quick; the app registration and the certificates are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batch.simulator.seed import generate_tenant
from batch.simulator.state import load_sample, open_store


def reset_tenant(
    state_dir: Path, *, users: int | None = None, seed: int = 0, seed_path: Path | None = None
) -> dict[str, Any]:
    """Replace the tenant with the sample, or a generated one of ``users`` users."""
    store = open_store(state_dir, seed_path)
    try:
        if users is None and seed == 0:
            tenant = load_sample(seed_path)
        else:
            tenant = generate_tenant(users=users or 300, seed=seed)
        store.load_tenant(tenant)
        return store.summary()
    finally:
        store.close()


def describe_tenant(state_dir: Path) -> dict[str, Any]:
    """Users, licensed users, SKUs with seats and groups of the tenant in ``state_dir``."""
    store = open_store(state_dir)
    try:
        return store.summary()
    finally:
        store.close()
