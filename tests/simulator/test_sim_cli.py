"""The simulator command group: serve (in a real process), reset, show."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import msal
import requests
from click.testing import CliRunner

from batch.cli import cli
from tests.childproc import m365batch_argv


def test_show_and_reset(isolated_home: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(cli, ["simulator", "show"], catch_exceptions=False)
    assert shown.exit_code == 0
    assert "Contoso (simulated)" in shown.output
    assert re.search(r"Users: 300\s+licensed: \d+\s+groups: 5", shown.output)
    assert re.search(r"SPE_E5\s+\d+\s+\d+\s+1\s+Enabled", shown.output)
    reset = runner.invoke(
        cli, ["simulator", "reset", "--users", "70", "--seed", "1"], catch_exceptions=False
    )
    assert reset.exit_code == 0
    assert reset.output.startswith("Reset: 70 users,")
    assert "Users: 70" in runner.invoke(cli, ["simulator", "show"]).output
    assert (isolated_home / "simulator" / "tenant.db").is_file()
    bad = runner.invoke(cli, ["simulator", "reset", "--users", "0"])
    assert bad.exit_code == 2


def test_serve_prints_a_working_environment(isolated_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}
    proc = subprocess.Popen(
        m365batch_argv("simulator", "serve", "--time-scale", "10", "--fault-item-429", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        exported: dict[str, str] = {}
        assert proc.stdout is not None
        while len(exported) < 6:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exported[name] = value.strip("'")
        app = msal.ConfidentialClientApplication(
            exported["AZURE_CLIENT_ID"],
            client_credential=exported["AZURE_CLIENT_SECRET"],
            authority=f"{exported['AZURE_AUTHORITY_HOST']}/{exported['AZURE_TENANT_ID']}",
            verify=exported["REQUESTS_CA_BUNDLE"],
            instance_discovery=False,
        )
        token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
        response = requests.get(
            f"{exported['M365BATCH_GRAPH_URL']}/subscribedSkus",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            verify=exported["REQUESTS_CA_BUNDLE"],
            timeout=10,
        )
        assert response.status_code == 200 and len(response.json()["value"]) == 14
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Stopped." in err
