"""Validation: every rule, collected not raised, with Excel rows and the clean requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from batch.intake.catalog import Catalog
from batch.intake.sources import read_sheet
from batch.intake.validate import (
    Action,
    RowStatus,
    Severity,
    parse_date,
    parse_usage_location,
    summary_lines,
    upn_problem,
    validate_sheet,
)

SPE_E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
E3_O365 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
AS_OF = dt.date(2025, 6, 1)
HEADER = [
    "UserPrincipalName",
    "AddLicenses",
    "RemoveLicenses",
    "DisabledPlans",
    "UsageLocation",
    "Groups",
    "RemoveGroups",
    "Action",
    "EffectiveDate",
    "EmployeeId",
]


def _row(
    upn: str = "ada@contoso.com",
    add: str = "SPE_E3",
    remove: str = "",
    plans: str = "",
    location: str = "US",
    groups: str = "",
    leave: str = "",
    action: str = "",
    date: str = "",
    employee: str = "007",
) -> list[str]:
    return [upn, add, remove, plans, location, groups, leave, action, date, employee]


def _validate(write_csv: Callable[..., Path], catalog: Catalog, *rows: list[str]):  # type: ignore[no-untyped-def]
    return validate_sheet(read_sheet(write_csv([HEADER, *rows])), catalog, as_of=AS_OF)


@pytest.mark.parametrize(
    "upn",
    [
        "ada@contoso.com",
        "o'brien@contoso.com",
        "ada+hr@contoso.com",
        "$svc@contoso.com",
        "ada_fabrikam.com#EXT#@contoso.onmicrosoft.com",
        "a.b-c_d!e^f~g@sub.contoso.co.uk",
        "ADA@CONTOSO.COM",
    ],
)
def test_valid_upns(upn: str) -> None:
    assert upn_problem(upn) is None


@pytest.mark.parametrize(
    ("upn", "why"),
    [
        ("ada", "no @domain"),
        ("ada@@contoso.com", "exactly one @"),
        ("@contoso.com", "nothing before"),
        ("ada lovelace@contoso.com", "space"),
        (".ada@contoso.com", "dot"),
        ("ada..l@contoso.com", "dot"),
        ("ada@contoso", "not a domain"),
        ("ada@-contoso.com", "not a domain"),
        ("ada@contoso.123", "top-level"),
        ("user1%40domain.com#x@evil.com", "'%'"),
        ("rené@contoso.com", "'é'"),
        ("a/b@contoso.com", "'/'"),
        ("=HYPERLINK(1)@x.com", "'('"),
        ("x" * 65 + "@contoso.com", "64 characters"),
    ],
)
def test_invalid_upns(upn: str, why: str) -> None:
    problem = upn_problem(upn)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    ("text", "code", "from_name"),
    [
        ("DE", "DE", False),
        ("de", "DE", False),
        ("Germany", "DE", True),
        ("United Kingdom", "GB", True),
        ("UK", "GB", True),
        ("gbr", "GB", True),
        ("United States", "US", True),
        ("XX", None, False),
        ("Narnia", None, False),
        ("", None, False),
    ],
)
def test_usage_locations(text: str, code: str | None, from_name: bool) -> None:
    found, by_name = parse_usage_location(text)
    assert found == code
    if code:
        assert by_name is from_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-04-03", dt.date(2025, 4, 3)),
        ("2025-04-03 00:00:00", dt.date(2025, 4, 3)),
        ("2025/4/3", dt.date(2025, 4, 3)),
        ("03.04.2025", dt.date(2025, 4, 3)),
        ("13/4/2025", dt.date(2025, 4, 13)),
        ("4/13/2025", dt.date(2025, 4, 13)),
        ("3 April 2025", dt.date(2025, 4, 3)),
        ("April 3, 2025", dt.date(2025, 4, 3)),
        ("03-Apr-2025", dt.date(2025, 4, 3)),
        ("3/3/2025", dt.date(2025, 3, 3)),
    ],
)
def test_dates(text: str, expected: dt.date) -> None:
    assert parse_date(text) == (expected, None)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("3/4/2025", "could be"),
        ("2025-02-30", "not a real date"),
        ("soon", "not a date"),
        ("45750", "not a date"),
    ],
)
def test_bad_dates(text: str, why: str) -> None:
    date, problem = parse_date(text)
    assert date is None and problem and why in problem


def test_clean_row_becomes_a_request(write_csv: Callable[..., Path], catalog: Catalog) -> None:
    result = _validate(
        write_csv,
        catalog,
        _row(
            add="Microsoft 365 E3; EMS",
            remove="ENTERPRISEPACK",
            plans="SPE_E3:SWAY, FORMS_PLAN_E3",
            location="Germany",
            groups="Sales; Licensing-E3",
            date="2025-01-02",
            employee="00123",
        ),
    )
    (request,) = result.rows
    assert request.status is RowStatus.READY and request.ready and not request.deferred
    assert request.row == 2 and request.upn == "ada@contoso.com" and request.action is Action.ASSIGN
    e3, ems = request.add_licenses
    assert e3.sku_id == SPE_E3 and ems.part_number == "EMS"
    sku = catalog.get(SPE_E3)
    assert sku is not None
    sway, forms = sku.find_plan("SWAY"), sku.find_plan("FORMS_PLAN_E3")
    assert sway and forms and e3.disabled_plans == tuple(sorted([sway.id, forms.id]))
    assert ems.disabled_plans == ()
    assert request.remove_licenses == (E3_O365,)
    assert request.usage_location == "DE" and request.join_groups == ("Sales", "Licensing-E3")
    assert request.effective_date == dt.date(2025, 1, 2)
    assert request.values[-1] == "00123" and request.values[1] == "Microsoft 365 E3; EMS"
    assert [f.rule for f in result.findings] == ["usage-location-name"]
    assert result.findings[0].severity is Severity.INFO


#: (row overrides, expected status, expected rules)
CASES = [
    ({"upn": ""}, RowStatus.INVALID, {"missing-user"}),
    ({"upn": "not an upn"}, RowStatus.INVALID, {"invalid-upn"}),
    ({"add": "SPE_E33"}, RowStatus.INVALID, {"unknown-license"}),
    ({"add": "AAD_PREMIUM"}, RowStatus.INVALID, {"license-not-in-tenant"}),
    ({"add": "MCOPSTNC"}, RowStatus.INVALID, {"company-license"}),
    ({"add": "VISIOCLIENT"}, RowStatus.INVALID, {"license-not-enabled"}),
    ({"add": "SPE_E3", "remove": "spe_e3"}, RowStatus.INVALID, {"add-and-remove"}),
    ({"remove": "AAD_PREMIUM", "add": ""}, RowStatus.READY, {"remove-not-in-tenant"}),
    ({"plans": "NOT_A_PLAN"}, RowStatus.INVALID, {"unknown-plan"}),
    ({"plans": "ATP_ENTERPRISE_GOV"}, RowStatus.INVALID, {"plan-not-in-license"}),
    ({"plans": "EMS:SWAY"}, RowStatus.INVALID, {"plan-not-in-license"}),
    ({"add": "", "plans": "SWAY"}, RowStatus.INVALID, {"plan-without-license"}),
    ({"location": "XX"}, RowStatus.INVALID, {"invalid-usage-location"}),
    ({"date": "3/4/2025"}, RowStatus.INVALID, {"invalid-date"}),
    ({"date": "2025-07-01"}, RowStatus.DEFERRED, {"future-date"}),
    ({"action": "fire"}, RowStatus.INVALID, {"unknown-action"}),
    ({"action": "offboard"}, RowStatus.INVALID, {"offboard-with-licenses"}),
    ({"action": "offboard", "add": "", "location": "", "groups": "Sales"}, RowStatus.READY, set()),
    ({"groups": "Sales", "leave": "sales"}, RowStatus.INVALID, {"group-join-and-leave"}),
    ({"add": "", "location": ""}, RowStatus.READY, {"nothing-to-do"}),
    ({"add": "MCOPSTN5"}, RowStatus.READY, set()),
    ({"add": "{05E9A617-0261-4CEE-BB44-138D3EF5D965}"}, RowStatus.READY, set()),
]


@pytest.mark.parametrize(("overrides", "status", "rules"), CASES)
def test_rules(
    write_csv: Callable[..., Path],
    catalog: Catalog,
    overrides: dict[str, str],
    status: RowStatus,
    rules: set[str],
) -> None:
    result = _validate(write_csv, catalog, _row(**overrides))
    assert result.rows[0].status is status
    assert {f.rule for f in result.findings} == rules
    for finding in result.findings:
        assert finding.row == 2 and finding.message
        assert finding.column in HEADER


def test_offboard_leaves_listed_groups(write_csv: Callable[..., Path], catalog: Catalog) -> None:
    result = _validate(
        write_csv,
        catalog,
        _row(action="Offboard", add="", location="", groups="Sales", leave="VPN"),
    )
    request = result.rows[0]
    assert request.action is Action.OFFBOARD and request.join_groups == ()
    assert request.leave_groups == ("Sales", "VPN")


def test_findings_carry_the_cell(write_csv: Callable[..., Path], catalog: Catalog) -> None:
    result = _validate(
        write_csv, catalog, _row(), _row(upn="bob@contoso.com", add="SPE_E3; Visio Plan 9")
    )
    (finding,) = result.findings
    assert (finding.row, finding.column, finding.value, finding.rule) == (
        3,
        "AddLicenses",
        "Visio Plan 9",
        "unknown-license",
    )
    assert "Did you mean VISIOCLIENT (Visio Plan 2" in finding.message
    assert result.detail(3) == finding.message and result.detail(2) == ""


def test_duplicates_are_skipped_and_conflicts_invalid(
    write_csv: Callable[..., Path], catalog: Catalog
) -> None:
    result = _validate(
        write_csv,
        catalog,
        _row(upn="ada@contoso.com"),
        _row(upn="ADA@contoso.com", add="Microsoft 365 E3"),
        _row(upn="bob@contoso.com"),
        _row(upn="bob@contoso.com", add="EMS"),
        _row(upn="eve@contoso.com"),
    )
    statuses = [(r.row, r.status) for r in result.rows]
    assert statuses == [
        (2, RowStatus.READY),
        (3, RowStatus.SKIPPED),
        (4, RowStatus.INVALID),
        (5, RowStatus.INVALID),
        (6, RowStatus.READY),
    ]
    assert result.rows[1].same_as == 2
    assert result.counts_by_rule() == {"duplicate-row": 1, "conflicting-rows": 2}
    assert "row(s) 5" in result.detail(4)


def test_as_of_turns_deferred_into_ready(write_csv: Callable[..., Path], catalog: Catalog) -> None:
    path = write_csv([HEADER, _row(date="2025-07-01")])
    sheet = read_sheet(path)
    assert validate_sheet(sheet, catalog, as_of=AS_OF).rows[0].status is RowStatus.DEFERRED
    later = validate_sheet(sheet, catalog, as_of=dt.date(2025, 7, 1))
    assert later.rows[0].status is RowStatus.READY and later.findings == []


def test_start_and_leave_dates_follow_the_action(
    write_csv: Callable[..., Path], catalog: Catalog
) -> None:
    path = write_csv(
        [
            ["UPN", "License", "Action", "StartDate", "LeaveDate"],
            ["ada@contoso.com", "SPE_E3", "", "2025-01-01", "2025-12-31"],
            ["bob@contoso.com", "", "offboard", "2020-01-01", "2025-12-31"],
        ]
    )
    result = validate_sheet(read_sheet(path), catalog, as_of=AS_OF)
    assert [(r.effective_date, r.status) for r in result.rows] == [
        (dt.date(2025, 1, 1), RowStatus.READY),
        (dt.date(2025, 12, 31), RowStatus.DEFERRED),
    ]
    assert result.findings[0].column == "LeaveDate"


def test_extra_cells_make_the_row_invalid(catalog: Catalog) -> None:
    from tests.intake.intakekit import FIXTURES

    result = validate_sheet(read_sheet(FIXTURES / "extra-cells.csv"), catalog, as_of=AS_OF)
    assert result.rows[0].status is RowStatus.INVALID
    assert [f.rule for f in result.findings] == ["extra-cells"]


def test_invalid_rows_never_stop_the_others(
    write_csv: Callable[..., Path], catalog: Catalog
) -> None:
    rows = [
        _row(upn=f"user{i}@contoso.com", add="NOPE" if i % 3 == 0 else "SPE_E3") for i in range(30)
    ]
    result = _validate(write_csv, catalog, *rows)
    assert len(result.rows) == 30
    assert result.counts() == {"Ready": 20, "Invalid": 10}
    assert [r.row for r in result.rows] == list(range(2, 32))


def test_summary_counts_each_status_once(write_csv: Callable[..., Path], catalog: Catalog) -> None:
    # Regression: the status counts were repeated four times on the summary line.
    result = _validate(
        write_csv,
        catalog,
        _row(upn="ada@contoso.com"),
        _row(upn="ada@contoso.com"),
        _row(upn="not a upn"),
    )
    line = summary_lines(result)[1]
    assert line == "  ready: 1, invalid: 1, deferred: 0, skipped: 1"


def test_messages_name_the_columns_as_the_sheet_writes_them(
    write_csv: Callable[..., Path], catalog: Catalog
) -> None:
    sheet = read_sheet(
        write_csv(
            [
                ["Email", "Licenses", "Plans To Disable", "Action"],
                ["ada@contoso.com", "", "SWAY", ""],
                ["", "SPE_E3", "", ""],
                ["bob@contoso.com", "SPE_E3", "", "offboard"],
            ]
        )
    )
    result = validate_sheet(sheet, catalog, as_of=AS_OF)
    assert "Plans To Disable needs a license in Licenses" in result.detail(2)
    assert "No user: fill in Email" in result.detail(3)
    assert "leave Licenses and Plans To Disable empty" in result.detail(4)
