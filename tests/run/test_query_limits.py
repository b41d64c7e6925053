"""Graph's query limits fail a row, not the run (graph-reference.md section 11).

``eq`` on a string takes at most 120 characters (group names may have 256), ``in`` at most
15 values; a per-row lookup Graph refuses with 400 fails that row only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from batch.cli import cli
from tests.run.runkit import SAMPLE, Tenant, onboarding_rows, write_csv
from tests.run.test_apply import rows_sheet

LONG_NAME = "Licensing - " + "Contoso Worldwide Sales and Marketing Operations " * 3


def _sheet(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    _, rows = onboarding_rows()
    body = [
        [rows[0][0], "FLOW_FREE", LONG_NAME],
        [rows[1][0], "FLOW_FREE", ""],
        [rows[2][0], "FLOW_FREE", "Sales Team"],
    ]
    return write_csv(tmp_path / "groups.csv", ["UPN", "Licenses", "Groups"], body), body


def test_a_group_name_over_120_characters_fails_its_row(tenant: Tenant, tmp_path: Path) -> None:
    assert len(LONG_NAME) > 120
    sheet, _ = _sheet(tmp_path)
    result = tenant.cli("apply", str(sheet), "--yes", "--output", str(tmp_path / "r.xlsx"))
    assert result.returncode == 3, result.stderr
    report = rows_sheet(tmp_path / "r.xlsx")
    assert [r["Status"] for r in report] == ["Failed", "Applied", "Applied"]
    assert (
        "longer than the 120 characters Graph can search for; use the group's id"
        in (report[0]["Detail"])
    )


def test_a_lookup_graph_refuses_fails_its_row(
    tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batch.graph.client

    # let the long name through to Graph, which answers 400 (eq longer than 120 characters)
    monkeypatch.setattr(batch.graph.client, "MAX_EQ_LENGTH", 10_000)
    sheet, _ = _sheet(tmp_path)
    result = CliRunner().invoke(
        cli, ["apply", str(sheet), "--yes", "--output", str(tmp_path / "r.xlsx")]
    )
    assert result.exit_code == 3, result.output
    report = rows_sheet(tmp_path / "r.xlsx")
    assert [r["Status"] for r in report] == ["Failed", "Applied", "Applied"]
    assert "Graph refused the lookup of group" in report[0]["Detail"]


def test_user_lookups_send_at_most_15_values_per_in(tenant: Tenant, tmp_path: Path) -> None:
    from batch.config import load_settings
    from batch.graph.client import GraphClient

    client = GraphClient(load_settings())
    upns = [u["userPrincipalName"] for u in SAMPLE["users"]][:47]
    found = client.resolve_users([*upns, "x" * 121 + "@contoso.example"])
    assert set(found) == set(upns)  # the over-long value is simply not found


def test_a_user_lookup_graph_refuses_leaves_only_that_user_out(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batch.graph.client
    from batch.config import load_settings
    from batch.graph.client import GraphClient

    monkeypatch.setattr(batch.graph.client, "MAX_EQ_LENGTH", 10_000)  # send it: Graph answers 400
    client = GraphClient(load_settings())
    upns = [u["userPrincipalName"] for u in SAMPLE["users"]][:20]
    found = client.resolve_users([*upns, "y" * 130 + "@contoso.example"])
    assert set(found) == set(upns)
