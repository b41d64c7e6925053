"""Write samples/tenant.json, the simulated tenant's starting state, from batch.simulator.seed.

Usage: python scripts/make_sample_tenant.py [--users N] [--seed N] [--output PATH]

The output is deterministic: the same arguments always give the same bytes, so the file in
the repository can be checked against a fresh run (tests/simulator does).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from batch.simulator.seed import DEFAULT_USERS, generate_tenant

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "samples" / "tenant.json"


def render(users: int = DEFAULT_USERS, seed: int = 0) -> str:
    """The sample tenant as the JSON text written to disk."""
    return json.dumps(generate_tenant(users=users, seed=seed), ensure_ascii=False, indent=1) + "\n"


def main() -> None:
    """Parse arguments and write the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(args.users, args.seed), encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
