"""Build the shipped SKU catalog (batch/data/sku-catalog.json) from Microsoft's reference CSV.

Microsoft publishes "Product names and service plan identifiers for licensing" as a CSV
(one row per SKU x service plan). This script normalises it for ``batch.intake.catalog``:

* every field stripped of whitespace, including U+00A0 and tabs (the CSV has part numbers
  such as ``MCOCAP_FACULTY\\u00a0`` and a GUID with a trailing NBSP);
* GUIDs lower-cased; exact duplicate rows dropped;
* keyed on the SKU GUID, because names are not unique (one part number maps to two GUIDs,
  and several display names map to more than one GUID); every display name a GUID carries
  is kept.

Usage::

    python scripts/build_sku_catalog.py PATH/TO/product-names-and-service-plan-identifiers.csv

The output is committed; rerun when Microsoft updates the CSV.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "batch" / "data" / "sku-catalog.json"
COLUMNS = [
    "Product_Display_Name",
    "String_Id",
    "GUID",
    "Service_Plan_Name",
    "Service_Plan_Id",
    "Service_Plans_Included_Friendly_Names",
]


def clean(text: str) -> str:
    """Collapse every whitespace run (NBSP and tabs included) to one space and strip."""
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ")).strip()


def build(source: Path) -> dict[str, object]:
    """Read the CSV and return the catalog document."""
    raw = source.read_bytes()
    with source.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or [clean(f) for f in reader.fieldnames] != COLUMNS:
            raise SystemExit(f"unexpected header: {reader.fieldnames}")
        rows = [tuple(clean(row[c] or "") for c in COLUMNS) for row in reader]
    skus: dict[str, dict[str, object]] = {}
    plans: dict[str, list[str]] = {}
    seen = set()
    for name, part, guid, plan_name, plan_id, plan_friendly in rows:
        key = (name, part, guid.lower(), plan_name, plan_id.lower(), plan_friendly)
        if key in seen:
            continue
        seen.add(key)
        guid, plan_id = guid.lower(), plan_id.lower()
        sku = skus.setdefault(guid, {"id": guid, "partNumber": part, "names": [], "plans": []})
        if name and name not in sku["names"]:  # type: ignore[operator]
            sku["names"].append(name)  # type: ignore[union-attr]
        if plan_id and plan_id not in sku["plans"]:  # type: ignore[operator]
            sku["plans"].append(plan_id)  # type: ignore[union-attr]
        if plan_id and plan_id not in plans:
            plans[plan_id] = [plan_name, plan_friendly]
    return {
        "source": "Microsoft: Product names and service plan identifiers for licensing (CSV)",
        "sourceSha256": hashlib.sha256(raw).hexdigest(),
        "rows": len(rows),
        "distinctRows": len(seen),
        "skus": sorted(skus.values(), key=lambda s: (str(s["partNumber"]).lower(), s["id"])),
        "plans": dict(sorted(plans.items())),
    }


def main() -> None:
    """Parse arguments, build, write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="Microsoft's CSV")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    document = build(args.source)
    args.output.write_text(
        json.dumps(document, indent=0, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(
        f"{args.output}: {len(document['skus'])} SKUs, {len(document['plans'])} service plans "  # type: ignore[arg-type]
        f"from {document['rows']} rows ({document['rows'] - document['distinctRows']} "
        "duplicates dropped)"
    )  # type: ignore[operator]


if __name__ == "__main__":
    main()
