"""Onboarding end to end on the simulated tenant: plan, apply, idempotence, report, undo, guards."""

from __future__ import annotations

import zipfile
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from batch.cli import cli
from batch.run.journal import Journal, list_runs, tenant_lock
from tests.run.runkit import SKU, Tenant, onboarding_rows, report_rows, upns_of, write_csv

STATUSES = {"Applied", "NoChange", "Planned", "Invalid", "Failed", "Deferred", "Skipped"}


def rows_sheet(path: Path) -> list[dict[str, str]]:
    return report_rows(path)


def test_apply_then_again_changes_nothing(tenant: Tenant, tmp_path: Path) -> None:
    headers, rows = onboarding_rows()
    sheet = write_csv(tmp_path / "hires.csv", headers, rows)
    runner = CliRunner()
    first = runner.invoke(
        cli,
        ["apply", str(sheet), "--yes", "--output", str(tmp_path / "r1.xlsx")],
        catch_exceptions=False,
    )
    assert first.exit_code == 0, first.output
    report = rows_sheet(tmp_path / "r1.xlsx")
    assert [r["UserPrincipalName"] for r in report] == upns_of(rows)  # every row once, in order
    assert {r["Status"] for r in report} == {"Applied"}
    assert {r["Verified"] for r in report} == {"Yes"}
    promoted = rows[20][0]
    assert set(tenant.licenses(promoted)) == {SKU["SPE_E5"]}
    assert tenant.sim.store.user("nadia.nolocation@contoso.example")["usageLocation"] == "GB"
    writes_before = sum(tenant.sim.store.applied_writes().values())

    second = runner.invoke(
        cli,
        ["apply", str(sheet), "--yes", "--output", str(tmp_path / "r2.xlsx")],
        catch_exceptions=False,
    )
    assert second.exit_code == 0, second.output
    assert "Nothing to write." in second.output
    assert sum(tenant.sim.store.applied_writes().values()) == writes_before
    assert {r["Status"] for r in rows_sheet(tmp_path / "r2.xlsx")} == {"NoChange"}


def test_plan_operations_are_what_apply_sends(tenant: Tenant, tmp_path: Path) -> None:
    from batch.graph.client import GraphClient
    from batch.jobs.onboarding import RunOptions, apply, prepare

    headers, rows = onboarding_rows()
    sheet = write_csv(tmp_path / "hires.csv", headers, rows)
    from batch.config import load_settings

    settings = load_settings()
    client = GraphClient(settings)
    planned = prepare(client, sheet, RunOptions())
    result = apply(client, settings, planned, output=tmp_path / "r.xlsx")
    with Journal.open(settings.home, result.run_id) as journal:
        sent = [
            (op.key, op.payload["method"], op.payload["url"], op.payload["body"])
            for op in journal.ops()
        ]
        assert all(op.state == "done" for op in journal.ops())
    assert sent == [(op.key, op.method, op.url, op.body) for op in planned.plan.ops]


def test_plan_writes_nothing_and_forecasts_seats(tenant: Tenant, tmp_path: Path) -> None:
    users = [
        u
        for u in tenant.sim.store.connection().execute(
            "SELECT upn FROM users WHERE account_enabled=1 LIMIT 5"
        )
    ]
    sheet = write_csv(tmp_path / "e5.csv", ["UPN", "License"], [[u[0], "SPE_E5"] for u in users])
    before = dict(tenant.sim.store.applied_writes())
    result = CliRunner().invoke(cli, ["plan", str(sheet), "--output", str(tmp_path / "plan.xlsx")])
    assert result.exit_code == 3, result.output
    assert "SPE_E5: free 1 -> 0" in result.output and "SHORT by" in result.output
    assert tenant.sim.store.applied_writes() == before
    statuses = [r["Status"] for r in rows_sheet(tmp_path / "plan.xlsx")]
    # short of a seat, or holding an Exchange plan E5's clashes with: Failed either way
    assert statuses.count("Failed") >= 3
    assert "Applied" not in statuses


def test_report_never_holds_a_formula(tenant: Tenant, tmp_path: Path) -> None:
    headers, rows = onboarding_rows()
    hostile = ['=HYPERLINK("http://x","y")', "+1+1", "-2", "@SUM(A1)", "\tlead", "\rcr"]
    for row, text in zip(rows, hostile, strict=False):
        row[1] = text
    sheet = write_csv(tmp_path / "hires.csv", headers, rows)
    result = CliRunner().invoke(
        cli, ["apply", str(sheet), "--yes", "--output", str(tmp_path / "r.xlsx")]
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "r.xlsx") as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in archive.read(name), name
    book = openpyxl.load_workbook(tmp_path / "r.xlsx")
    departments = [c.value for c in book["Rows"]["B"][1:7]]
    assert departments[0] == hostile[0] and departments[2] == "-2"
    assert all(c.data_type == "s" for c in book["Rows"]["B"][1:7])


def test_no_secret_or_token_in_logs_journal_or_report(tenant: Tenant, tmp_path: Path) -> None:
    headers, rows = onboarding_rows()
    sheet = write_csv(tmp_path / "hires.csv", headers, rows[:5])
    result = tenant.cli(
        "--debug", "apply", str(sheet), "--yes", "--output", str(tmp_path / "r.xlsx")
    )
    assert result.returncode == 0, result.stderr
    secret = tenant.sim.client_secret.encode()
    files = [p for p in tenant.home.rglob("*") if p.is_file()] + [tmp_path / "r.xlsx"]
    assert any(p.suffix == ".log" for p in files)
    for path in files:
        data = path.read_bytes()
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as archive:
                data = b"".join(archive.read(n) for n in archive.namelist())
        assert secret not in data, path
        assert b"eyJ" not in data, path  # no JWT (access token or assertion)
    assert secret.decode() not in result.stdout + result.stderr


def test_undo_returns_the_tenant_to_before(tenant: Tenant, tmp_path: Path) -> None:
    headers, rows = onboarding_rows()
    upns = upns_of(rows)
    before = tenant.state(upns)
    sheet = write_csv(tmp_path / "hires.csv", headers, rows)
    runner = CliRunner()
    assert runner.invoke(cli, ["apply", str(sheet), "--yes"], catch_exceptions=False).exit_code == 0
    run_id = list_runs(tenant.home)[0].run_id
    changed = tenant.state(upns)
    assert changed != before
    result = runner.invoke(
        cli,
        ["undo", run_id, "--yes", "--output", str(tmp_path / "undo.xlsx")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    after = tenant.state(upns)
    # usage locations cannot be unset through Graph; everything else is as before
    assert {u: s[0] for u, s in after.items()} == {u: s[0] for u, s in before.items()}
    assert list_runs(tenant.home)[0].kind == "undo"


def test_removals_over_the_threshold_need_an_override(tenant: Tenant, tmp_path: Path) -> None:
    licensed = [
        r[0]
        for r in tenant.sim.store.connection().execute(
            "SELECT upn FROM users WHERE account_enabled=1 "
            "AND id IN (SELECT user_id FROM licenses) LIMIT 4"
        )
    ]
    sheet = write_csv(
        tmp_path / "leavers.csv", ["UPN", "Action"], [[u, "offboard"] for u in licensed]
    )
    before = dict(tenant.sim.store.applied_writes())
    result = CliRunner().invoke(cli, ["apply", str(sheet), "--yes", "--max-removals", "2"])
    assert result.exit_code == 4, result.output
    assert "--max-removals" in result.output
    assert tenant.sim.store.applied_writes() == before
    result = CliRunner().invoke(
        cli,
        [
            "apply",
            str(sheet),
            "--yes",
            "--max-removals",
            "10",
            "--output",
            str(tmp_path / "r.xlsx"),
        ],
    )
    assert result.exit_code == 0, result.output
    for upn in licensed:  # only licenses inherited from groups may remain
        states = tenant.sim.store.user(upn)["licenseAssignmentStates"]
        assert all(state["assignedByGroup"] for state in states), upn
    assert {r["Status"] for r in rows_sheet(tmp_path / "r.xlsx")} <= {"Applied", "Skipped"}


def test_a_second_writer_on_the_same_tenant_is_refused(tenant: Tenant, tmp_path: Path) -> None:
    headers, rows = onboarding_rows()
    sheet = write_csv(tmp_path / "hires.csv", headers, rows[:3])
    with tenant_lock(tenant.home, tenant.sim.tenant_id, "run-elsewhere"):
        result = CliRunner().invoke(cli, ["apply", str(sheet), "--yes"])
    assert result.exit_code == 1
    assert "Another run (run run-elsewhere" in result.output


def test_every_status_is_one_of_the_contract(tenant: Tenant, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "apply",
            str(Path("samples/onboarding.xlsx").resolve()),
            "--yes",
            "--output",
            str(tmp_path / "r.xlsx"),
        ],
    )
    assert result.exit_code == 3, result.output
    report = rows_sheet(tmp_path / "r.xlsx")
    assert len(report) == 36
    assert {r["Status"] for r in report} <= STATUSES
    by_upn = {r["Email"]: r for r in report}
    assert by_upn["new.starter@contoso.example"]["ErrorCode"] == "UserNotFound"
    assert by_upn["nadia.nolocation@contoso.example"]["ErrorCode"] == "NoUsageLocation"
    assert by_upn["ingrid.andersson@contoso.example"]["Status"] == "Skipped"
    assert [r["Employee ID"] for r in report][-1] == "000417"


@pytest.mark.parametrize(
    "changed", [True, False], ids=["changed-input-refused", "unchanged-finished-refused"]
)
def test_resume_refuses_what_it_cannot_continue(
    tenant: Tenant, tmp_path: Path, changed: bool
) -> None:
    headers, rows = onboarding_rows()
    sheet = write_csv(tmp_path / "hires.csv", headers, rows[:3])
    result = tenant.cli(
        "apply", str(sheet), "--yes", extra_env={"M365BATCH_CRASH_AT": "journal.done:1"}
    )
    assert result.returncode == -9
    run_id = list_runs(tenant.home)[0].run_id
    if changed:
        write_csv(sheet, headers, rows[:4])
        result = CliRunner().invoke(cli, ["resume", run_id])
        assert result.exit_code == 1 and "changed since the run started" in result.output
    else:
        assert CliRunner().invoke(cli, ["resume"]).exit_code == 0
        result = CliRunner().invoke(cli, ["resume", run_id])
        assert result.exit_code == 1 and "already finished" in result.output


def test_unknown_groups_fail_their_row_only(tenant: Tenant, tmp_path: Path) -> None:
    headers, rows = onboarding_rows()
    sheet = write_csv(
        tmp_path / "groups.csv",
        ["UPN", "Licenses", "Groups"],
        [
            [rows[0][0], "FLOW_FREE", "00000000-1111-4222-8333-444444444444"],
            [rows[1][0], "FLOW_FREE", "No Such Group"],
            [rows[2][0], "FLOW_FREE", "Sales Team"],
        ],
    )
    result = CliRunner().invoke(cli, ["plan", str(sheet), "--output", str(tmp_path / "p.xlsx")])
    assert result.exit_code == 3, result.output
    report = rows_sheet(tmp_path / "p.xlsx")
    assert [r["Status"] for r in report] == ["Failed", "Failed", "Planned"]
    assert report[0]["Detail"] == "no group with id 00000000-1111-4222-8333-444444444444"
    assert report[1]["Detail"] == "no group named 'No Such Group'"


def test_offboarding_sample_removes_direct_and_leaves_licensed_groups(
    tenant: Tenant, tmp_path: Path
) -> None:
    sample = Path("samples/offboarding.csv").resolve()
    result = CliRunner().invoke(
        cli, ["apply", str(sample), "--yes", "--output", str(tmp_path / "r.xlsx")]
    )
    assert result.exit_code == 3, result.output  # one leaver is dated in the future: Deferred
    report = rows_sheet(tmp_path / "r.xlsx")
    assert [r["Status"] for r in report] == ["Applied"] * 9 + ["Deferred"]
    for row in report[:9]:
        states = tenant.sim.store.user(row["UserPrincipalName"])["licenseAssignmentStates"]
        assert all(s["assignedByGroup"] for s in states), row  # no direct license left
    leaver = next(r for r in report if r["RemoveGroups"])
    assert leaver["Detail"] == (
        "Enterprise Mobility + Security E3 (EMS) goes with the group the user leaves"
    )
    assert leaver["LicensesAfter"] == "" and leaver["Verified"] == "Yes"
