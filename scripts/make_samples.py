"""Write the sample input sheets from the sample tenant (deterministic).

    python scripts/make_samples.py

``samples/onboarding.xlsx``: an HR onboarding sheet of about 40 rows with the mess real
sheets have: a missing country, a country written as a name, an unknown SKU, a product
written by name, a duplicate row, a guest, a future start date, a swap, a licensed group,
an apostrophe in a UPN, a leading-zero employee id, a disabled account, a user who does
not exist yet, and more rows for the scarce Microsoft 365 E3 than it has free seats.

``samples/offboarding.csv``: leavers (Action = offboard), one of them with a license
inherited from a group, one leaving in the future.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FUTURE = dt.date(2031, 3, 1)  # far enough ahead to stay in the future
PAST = dt.date(2026, 11, 2)
E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"


def main() -> None:
    tenant = json.loads((SAMPLES / "tenant.json").read_text(encoding="utf-8"))
    users = {u["userPrincipalName"]: u for u in tenant["users"]}
    in_licensed_groups = {
        m for g in tenant["groups"] if g["assignedLicenses"] for m in g["members"]
    }
    named = {
        "daniel.o'brien@contoso.example",
        "nadia.nolocation@contoso.example",
        "ingrid.andersson@contoso.example",
    }
    unlicensed = [
        u
        for u in tenant["users"]
        if not u.get("licenses")
        and u["accountEnabled"]
        and u.get("usageLocation")
        and "#EXT#" not in u["userPrincipalName"]
        and not u["userPrincipalName"].startswith("$")
        and u["id"] not in in_licensed_groups
        and u["userPrincipalName"] not in named
    ]
    write_onboarding(users, unlicensed, in_licensed_groups)
    write_offboarding(tenant, users)


def write_onboarding(
    users: dict[str, dict], unlicensed: list[dict], in_licensed_groups: set[str]
) -> None:
    headers = [
        "Employee ID",
        "Display Name",
        "Email",
        "Department",
        "Country",
        "Licenses",
        "Remove Licenses",
        "Disabled Plans",
        "Groups",
        "Start Date",
        "Manager",
        "Notes",
    ]
    rows: list[list[object]] = []

    def hire(
        upn: str,
        licenses: str,
        *,
        country: str | None = None,
        plans: str = "",
        groups: str = "",
        start: dt.date = PAST,
        remove: str = "",
        notes: str = "",
        employee: str | None = None,
    ) -> None:
        user = users.get(upn, {})
        rows.append(
            [
                employee if employee is not None else user.get("employeeId", ""),
                user.get("displayName", upn.split("@")[0].replace(".", " ").title()),
                upn,
                user.get("department", "Sales"),
                country if country is not None else (user.get("usageLocation") or ""),
                licenses,
                remove,
                plans,
                groups,
                start,
                "adele.vance@contoso.example",
                notes,
            ]
        )

    plain = iter(unlicensed)
    for index in range(12):  # ordinary hires on SKUs with seats to spare
        user = next(plain)
        hire(
            user["userPrincipalName"],
            "O365_BUSINESS_ESSENTIALS; FLOW_FREE" if index < 8 else "EMS; FLOW_FREE",
        )
    for _ in range(4):  # Microsoft 365 E3 has only 2 free seats: the last two rows fail
        user = next(plain)
        hire(
            user["userPrincipalName"],
            "Microsoft 365 E3",
            plans="SPE_E3:YAMMER_ENTERPRISE",
            notes="E3 with Yammer off",
        )
    user = next(plain)
    hire(user["userPrincipalName"], "Office 365 E3", notes="product written by name")
    user = next(plain)
    hire(user["userPrincipalName"], "ENTERPRISEPACK", country="Germany", notes="country as a name")
    hire(
        "daniel.o'brien@contoso.example", "EMS; O365_BUSINESS_ESSENTIALS", notes="apostrophe in UPN"
    )
    hire(
        "adele.vance_fabrikam.example#EXT#@contoso.example",
        "EXCHANGESTANDARD",
        country="NL",
        notes="guest from Fabrikam",
    )
    hire(
        "nadia.nolocation@contoso.example",
        "O365_BUSINESS_ESSENTIALS",
        country="",
        notes="HR forgot the country",
    )
    hire(
        "ingrid.andersson@contoso.example",
        "O365_BUSINESS_ESSENTIALS",
        notes="account still disabled",
    )
    hire(
        "new.starter@contoso.example",
        "O365_BUSINESS_ESSENTIALS",
        country="GB",
        notes="account not created yet",
        employee="E020001",
    )
    user = next(plain)
    hire(user["userPrincipalName"], "SPE_E7_ULTRA", notes="no such SKU")
    user = next(plain)
    hire(user["userPrincipalName"], "O365_BUSINESS_ESSENTIALS", start=FUTURE, notes="starts later")
    user = next(plain)
    hire(
        user["userPrincipalName"],
        "O365_BUSINESS_ESSENTIALS",
        groups="Sales Team",
        notes="joins Sales",
    )
    # people moving roles: add-ons on top of what they hold, and one promotion (a swap)
    promoted = next(
        u
        for u in users.values()
        if u["id"] not in in_licensed_groups
        and u["accountEnabled"]
        and [lic["skuId"] for lic in u.get("licenses", [])] == [E3]
    )
    movers = iter(
        u
        for u in users.values()
        if u.get("licenses")
        and u["accountEnabled"]
        and u["id"] not in in_licensed_groups
        and u.get("usageLocation")
        and not u["userPrincipalName"].startswith("room-")
        and u is not promoted
    )
    for _ in range(3):
        hire(next(movers)["userPrincipalName"], "FLOW_FREE", notes="add-on")
    hire(next(movers)["userPrincipalName"], "PROJECTPREMIUM", notes="project manager")
    for _ in range(2):
        hire(next(movers)["userPrincipalName"], "Power BI Pro", notes="no Power BI seats left")
    hire(next(movers)["userPrincipalName"], "Visio Plan 2", notes="Visio subscription suspended")
    duplicate = list(rows[3])
    duplicate[-1] = "same row sent twice"
    rows.append(duplicate)
    hire(
        promoted["userPrincipalName"], "SPE_E5", remove="SPE_E3", notes="promotion: swap E3 for E5"
    )
    user = next(plain)
    hire(user["userPrincipalName"], "FLOW_FREE", employee="000417", notes="leading zeros kept")

    book = Workbook()
    sheet = book.active
    sheet.title = "New hires"
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
    for cell in sheet["A"][1:]:
        cell.number_format = "@"
    for cell in sheet["J"][1:]:
        cell.number_format = "yyyy-mm-dd"
    for column, width in zip(
        "ABCDEFGHIJKL", (12, 24, 44, 18, 10, 40, 16, 28, 16, 12, 30, 30), strict=True
    ):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"
    book.save(SAMPLES / "onboarding.xlsx")


def write_offboarding(tenant: dict, users: dict[str, dict]) -> None:
    by_group = {g["displayName"]: set(g["members"]) for g in tenant["groups"]}
    licensed = [
        u
        for u in tenant["users"]
        if u.get("licenses")
        and u["accountEnabled"]
        and u["id"] not in by_group["Licensing - Microsoft 365 E3"]
    ]
    leavers = licensed[40:48]
    inherited = next(u for u in tenant["users"] if u["id"] in by_group["Licensing - EMS E3"])
    with (SAMPLES / "offboarding.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["UserPrincipalName", "DisplayName", "Action", "RemoveGroups", "LeaveDate", "Reason"]
        )
        for user in leavers:
            writer.writerow(
                [
                    user["userPrincipalName"],
                    user["displayName"],
                    "offboard",
                    "",
                    PAST.isoformat(),
                    "resigned",
                ]
            )
        writer.writerow(
            [
                inherited["userPrincipalName"],
                inherited["displayName"],
                "offboard",
                "Licensing - EMS E3",
                PAST.isoformat(),
                "contract ended",
            ]
        )
        late = licensed[60]
        writer.writerow(
            [
                late["userPrincipalName"],
                late["displayName"],
                "offboard",
                "",
                FUTURE.isoformat(),
                "leaves later",
            ]
        )


if __name__ == "__main__":
    main()
