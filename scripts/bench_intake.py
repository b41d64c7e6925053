"""Benchmark the intake stage: read + validate 100,000 rows (XLSX and CSV), write a Rows sheet.

Prints wall time and peak RSS per case; each case runs in its own process so the figures
do not mix. Targets: XLSX read+validate <= 5 s, CSV <= 2 s, peak memory < 1 GB.

Usage::

    python scripts/bench_intake.py            # 100,000 rows
    python scripts/bench_intake.py --rows 20000
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = [
    "UserPrincipalName",
    "AddLicenses",
    "RemoveLicenses",
    "DisabledPlans",
    "UsageLocation",
    "Action",
    "EffectiveDate",
    "DisplayName",
    "Department",
    "EmployeeId",
]
PARTS = ("SPE_E3", "SPE_E5", "ENTERPRISEPACK", "EMS", "Microsoft 365 E3")
COUNTRIES = ("US", "GB", "DE", "France", "NL")


def _rows(count: int) -> list[list[object]]:
    rows: list[list[object]] = []
    for i in range(count):
        rows.append(
            [
                f"user{i:06d}@contoso.com",
                PARTS[i % 5],
                "ENTERPRISEPACK" if i % 7 == 0 and i % 5 != 2 else "",
                "SPE_E3:SWAY" if i % 5 in (0, 4) and i % 3 == 0 else "",
                COUNTRIES[i % 5],
                "offboard" if i % 97 == 0 else "",
                "2025-01-02" if i % 11 else "2099-01-01",
                f"User {i}",
                ("Sales", "R&D", "Finance", "NA")[i % 4],
                f"{i:06d}",
            ]
        )
        if rows[-1][5] == "offboard":
            rows[-1][1] = rows[-1][2] = rows[-1][3] = ""
    return rows


def make_inputs(folder: Path, count: int) -> tuple[Path, Path]:
    """Write the CSV and XLSX inputs (the XLSX with typed numbers and dates, as Excel does)."""
    import xlsxwriter

    rows = _rows(count)
    csv_path = folder / "bench.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    xlsx_path = folder / "bench.xlsx"
    book = xlsxwriter.Workbook(str(xlsx_path), {"constant_memory": True})
    sheet = book.add_worksheet("Users")
    date_format = book.add_format({"num_format": "yyyy-mm-dd"})
    zeros = book.add_format({"num_format": "000000"})
    sheet.write_row(0, 0, HEADER)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if c == 6:
                sheet.write_datetime(r, c, dt.datetime.fromisoformat(str(value)), date_format)
            elif c == 9:
                sheet.write_number(r, c, int(str(value)), zeros)
            elif value:
                sheet.write_string(r, c, str(value))
    book.close()
    return csv_path, xlsx_path


def case_read_validate(path: Path) -> str:
    """Read and validate one file; return a one-line result."""
    from batch.intake.catalog import Catalog, subscribed_skus_from_catalog
    from batch.intake.sources import read_sheet
    from batch.intake.validate import validate_sheet

    start = time.perf_counter()
    sheet = read_sheet(path)
    read = time.perf_counter() - start
    result = validate_sheet(
        sheet,
        Catalog.load(
            subscribed_skus_from_catalog(
                ["SPE_E3", "SPE_E5", "ENTERPRISEPACK", "EMS"], enabled=200_000
            )
        ),
        as_of=dt.date(2025, 6, 1),
    )
    total = time.perf_counter() - start
    assert sheet.rows[5].values[9] == "000005", sheet.rows[5].values
    return (
        f"read {read:5.2f} s + validate {total - read:5.2f} s = {total:5.2f} s; "
        f"{len(result.rows):,} rows, {dict(result.counts())}"
    )


def case_write_rows(path: Path) -> str:
    """Validate the CSV and write the validation workbook (Problems + Rows)."""
    from batch.intake.catalog import Catalog, subscribed_skus_from_catalog
    from batch.intake.sources import read_sheet
    from batch.intake.validate import validate_sheet
    from batch.reports.validation import write_validation_workbook

    result = validate_sheet(
        read_sheet(path),
        Catalog.load(subscribed_skus_from_catalog(["SPE_E3", "SPE_E5", "ENTERPRISEPACK", "EMS"])),
        as_of=dt.date(2025, 6, 1),
    )
    target = path.with_name("bench-validate.xlsx")
    target.unlink(missing_ok=True)
    start = time.perf_counter()
    write_validation_workbook(result, target)
    took = time.perf_counter() - start
    cells = len(result.rows) * (len(HEADER) + 3)
    return (
        f"wrote {len(result.rows):,} rows x {len(HEADER) + 3} columns ({cells:,} cells) in "
        f"{took:5.2f} s"
    )


def main() -> None:
    """Make the inputs, then run each case in a child process and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--case", choices=["read", "write"], help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        line = case_read_validate(args.path) if args.case == "read" else case_write_rows(args.path)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        # CPU seconds too: wall time on a shared 2-core machine depends on the neighbours.
        print(
            f"{line}; process CPU {usage.ru_utime + usage.ru_stime:5.2f} s (incl. start-up); "
            f"peak RSS {usage.ru_maxrss / 1024:,.0f} MiB"
        )
        return
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        start = time.perf_counter()
        csv_path, xlsx_path = make_inputs(folder, args.rows)
        print(
            f"inputs: {args.rows:,} rows ({time.perf_counter() - start:.1f} s to generate); "
            f"CSV {csv_path.stat().st_size / 2**20:.1f} MiB, XLSX "
            f"{xlsx_path.stat().st_size / 2**20:.1f} MiB"
        )
        for label, case, path in (
            ("XLSX read+validate", "read", xlsx_path),
            ("CSV  read+validate", "read", csv_path),
            ("Rows workbook write", "write", csv_path),
        ):
            output = subprocess.run(
                [sys.executable, __file__, "--case", case, str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"{label}: {output.stdout.strip()}")


if __name__ == "__main__":
    main()
