"""Simulated tenant, knobs: throttling quotas, time scale, faults on demand, latency.

One :class:`SimulatorOptions` object is shared by the running server. Tests may change its
fields while the server runs (``sim.options.fault_item_429 = 0.2``); every request reads them
afresh. Rates are probabilities in ``[0, 1]`` drawn from one seeded random generator, so a
run with the same seed and the same request sequence sees the same faults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

#: the environment variable that picks the preset of the built-in simulator
PRESET_ENV = "M365BATCH_SIMULATOR"
PRESETS = ("strict", "realistic")


@dataclass
class SimulatorOptions:
    """What the simulated tenant does besides answering correctly."""

    #: seeds the fault generator and the shuffled order of ``$batch`` responses
    seed: int = 0
    #: 10 = every window, Retry-After and processing delay is 10x shorter (limits unchanged)
    time_scale: float = 1.0

    # Throttling (identity and access limits, graph-reference.md section 2).
    throttling: bool = True
    #: write requests per ``write_window`` seconds per app+tenant
    write_quota: int = 3000
    write_window: float = 150.0
    #: write requests per ``tenant_write_window`` seconds for the whole tenant
    tenant_write_quota: int = 18000
    tenant_write_window: float = 300.0
    #: resource units per ``resource_unit_window`` per app+tenant; None = by tenant size (S/M/L)
    resource_unit_quota: int | None = None
    resource_unit_window: float = 10.0

    # Faults per Graph operation (a standalone request or one $batch item).
    fault_item_429: float = 0.0
    fault_item_500: float = 0.0
    fault_item_503: float = 0.0
    fault_item_504: float = 0.0
    #: when True the per-item faults above only hit writes (POST/PATCH/PUT/DELETE)
    faults_writes_only: bool = False
    #: the write is applied, then 504 is answered ("lost acknowledgement")
    fault_lost_ack: float = 0.0
    #: Retry-After seconds sent with injected 429/503 (scaled by time_scale)
    fault_retry_after: float = 2.0

    # Faults per standalone Graph request (never a $batch POST, never the token endpoint):
    # the request is not applied and the whole answer is the fault.
    fault_single_429: float = 0.0
    fault_single_500: float = 0.0
    fault_single_503: float = 0.0

    # Faults per whole $batch request (every item fails the same way; outer status as given).
    fault_batch_429: float = 0.0
    fault_batch_503: float = 0.0
    fault_batch_504: float = 0.0

    # Connection faults per HTTP request: the socket is closed with no answer.
    fault_reset_before: float = 0.0  #: before anything is applied
    fault_reset_after: float = 0.0  #: after the request was applied

    # Latency (sleeps in the handler thread; the server is threaded with keep-alive).
    latency_ms: int = 0  #: per HTTP request
    item_latency_ms: int = 0  #: per Graph operation (each $batch item)

    # Tokens.
    token_lifetime: int = 3599  #: ``expires_in`` of issued tokens
    #: tokens are rejected as expired this many seconds after issue (None = at ``exp``)
    token_expire_after: float | None = None

    # Directory behaviour.
    #: seconds (scaled) before a group license or membership change is processed
    group_processing_delay: float = 10.0
    #: seconds (scaled) after a usageLocation change during which assignLicense still
    #: answers "invalid usage location" (replication lag, graph-reference.md section 10)
    usage_location_lag: float = 0.0
    #: probability that a read of a user written less than ``read_lag_window`` seconds
    #: (scaled) ago shows the user as before that write (eventual consistency,
    #: graph-reference.md section 4: "A successful write ... does not guarantee that an
    #: immediate read will reflect that change."); drawn per user per read, seeded
    read_lag: float = 0.0
    read_lag_window: float = 3.0

    @classmethod
    def realistic(cls, **overrides: Any) -> SimulatorOptions:
        """Options that behave like the real service rather than an ideal one.

        Choice (the docs give no rates): reads lag writes 30% of the time for 2 s, a new
        usage location takes 3 s to reach licensing, 5% of writes are throttled (429 with
        Retry-After), the quotas apply, and every request takes 30 ms. ``overrides`` win.
        """
        preset: dict[str, Any] = {
            "read_lag": 0.3,
            "read_lag_window": 2.0,
            "usage_location_lag": 3.0,
            "fault_item_429": 0.05,
            "faults_writes_only": True,
            "throttling": True,
            "latency_ms": 30,
        }
        return cls(**{**preset, **overrides})

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> SimulatorOptions:
        """Options for the built-in simulator: ``M365BATCH_SIMULATOR=realistic`` picks the
        :meth:`realistic` preset; unset, empty or ``strict`` the plain (fault-free) one."""
        value = (os.environ if env is None else env).get(PRESET_ENV, "").strip().lower()
        if value == "realistic":
            return cls.realistic(**overrides)
        if value in ("", "strict"):
            return cls(**overrides)
        raise ValueError(f"{PRESET_ENV}={value!r}: expected one of {', '.join(PRESETS)}.")

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """Every option name."""
        return frozenset(f.name for f in fields(cls))

    def scaled(self, seconds: float) -> float:
        """``seconds`` of simulated time as real seconds under ``time_scale``."""
        return seconds / self.time_scale if self.time_scale > 0 else seconds
