"""True-up, the month before: what an earlier true-up workbook said, for the Changes sheet."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from batch.errors import InputError
from batch.jobs.trueup.prices import read_rows

__all__ = ["Previous", "read_previous"]


@dataclass
class Previous:
    """What an earlier true-up workbook said: licensed users and seats per SKU."""

    path: Path
    users: dict[str, tuple[str, str, str]]  #: casefolded UPN -> (UPN, name, licenses)
    seats: dict[str, tuple[str, int, int]]  #: part number -> (product, purchased, assigned)
    date: str = ""


def _int(text: str) -> int:
    cleaned = re.sub(r"[^\d-]", "", text)
    return int(cleaned) if cleaned not in ("", "-") else 0


def read_previous(path: Path | str) -> Previous:
    """Read an earlier true-up workbook's Users sheet and Summary seat table."""
    path = Path(path)
    hint = "Give --previous a workbook written by m365batch true-up."
    try:
        _, user_rows = read_rows(path, sheet="Users")
        _, summary_rows = read_rows(path, sheet="Summary")
    except InputError as exc:
        raise InputError(
            f"is not a true-up workbook ({exc.message})", path=path, hint=hint
        ) from exc
    if not user_rows or "UPN" not in user_rows[0]:
        raise InputError(
            "is not a true-up workbook (its Users sheet has no UPN column).", path=path, hint=hint
        )
    head = user_rows[0]
    upn_col, name_col, lic_col = head.index("UPN"), head.index("Name"), head.index("Licenses")
    users = {}
    for row in user_rows[1:]:
        if len(row) > upn_col and row[upn_col].strip():
            upn = row[upn_col].strip()
            users[upn.casefold()] = (upn, row[name_col], row[lic_col])
    seats: dict[str, tuple[str, int, int]] = {}
    date = ""
    header: list[str] | None = None
    for row in summary_rows:
        if row and row[0] == "Date" and len(row) > 1:
            date = row[1]
        if header is None:
            if "Part number" in row and "Purchased" in row:
                header = row
            continue
        if not row or not row[header.index("Part number")].strip():
            break
        part = row[header.index("Part number")].strip()
        seats[part] = (
            row[header.index("Product")],
            _int(row[header.index("Purchased")]),
            _int(row[header.index("Assigned")]),
        )
    if header is None:
        raise InputError(
            "is not a true-up workbook (its Summary sheet has no seat table).", path=path, hint=hint
        )
    return Previous(path=path, users=users, seats=seats, date=date)
