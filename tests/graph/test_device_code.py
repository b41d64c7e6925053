"""Device-code sign-in for a delegated admin, against the simulated tenant over HTTPS."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
import requests

from batch.config import load_settings
from batch.errors import AuthError
from batch.graph.client import GraphClient
from batch.simulator import SimulatorOptions, start_simulator

_PROMPT = re.compile(r"open the page (\S+) and enter the code (\S+) ")


_PASSWORD = re.compile(r"sign in as (\S+) with the password in (\S+)\)")


def _approve_later(message: str, ca: Path) -> None:
    url, code = _PROMPT.search(message).groups()  # type: ignore[union-attr]
    user, password_file = _PASSWORD.search(message).groups()  # type: ignore[union-attr]
    password = Path(password_file).read_text(encoding="utf-8").strip()

    def approve() -> None:
        # without signing in as the admin, the code is not approved
        anonymous = requests.get(url, params={"code": code}, verify=str(ca), timeout=10)
        assert anonymous.status_code == 200 and "password" in anonymous.text
        wrong = {"code": code, "username": user, "password": "guess"}
        refused = requests.post(url, data=wrong, verify=str(ca), timeout=10)
        assert refused.status_code == 401 and refused.json()["signedIn"] is False
        form = {"code": code, "username": user, "password": password}
        answer = requests.post(url, data=form, verify=str(ca), timeout=10)
        assert answer.status_code == 200 and answer.json()["signedIn"] is True

    threading.Timer(0.3, approve).start()


def test_device_code_sign_in_gets_a_delegated_token_that_graph_accepts(tmp_path: Path) -> None:
    with start_simulator(tmp_path / "sim", SimulatorOptions(time_scale=20)) as sim:
        shown: list[str] = []

        def prompt(text: str) -> None:
            shown.append(text)
            _approve_later(text, sim.ca_path)

        settings = replace(
            load_settings({"M365BATCH_HOME": str(tmp_path / "home")}),
            tenant_id=sim.tenant_id,
            client_id=sim.client_id,
            authority_host=sim.authority_host,
            graph_url=sim.graph_url,
            ca_bundle=str(sim.ca_path),
            device_code=True,
            prompt=prompt,
        )
        client = GraphClient(settings)
        skus = list(client.get_all("/subscribedSkus"))
        assert skus and len(shown) == 1 and "/devicelogin" in shown[0]
        token = client.tokens.token()
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["idtyp"] == "user" and "LicenseAssignment.ReadWrite.All" in claims["scp"]
        assert "roles" not in claims
        client.get_all("/users", params={"$top": 5})  # the cached token serves further calls
        assert len(shown) == 1
        sign_in = client.tokens._session  # type: ignore[attr-defined]
        assert len(sign_in.get_adapter(sim.authority_host).poolmanager.pools) == 1
        client.close()  # the sign-in's connections too
        assert len(sign_in.get_adapter(sim.authority_host).poolmanager.pools) == 0


def test_a_code_nobody_confirms_expires_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_simulator(tmp_path / "sim") as sim:
        settings = replace(
            load_settings({"M365BATCH_HOME": str(tmp_path / "home")}),
            tenant_id=sim.tenant_id,
            client_id="00000000-0000-4000-8000-000000000000",
            authority_host=sim.authority_host,
            graph_url=sim.graph_url,
            ca_bundle=str(sim.ca_path),
            device_code=True,
            prompt=lambda text: None,
        )
        with pytest.raises(AuthError, match="AADSTS700016"):
            GraphClient(settings).get("/subscribedSkus")


def test_cli_device_code_on_the_simulated_tenant(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "REQUESTS_", "CURL_"))
    }
    env["M365BATCH_HOME"] = str(tmp_path / "home")
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch", "--device-code", "skus"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "/devicelogin" in line:
            break
    ca = tmp_path / "home" / "simulator"
    ca_path = next(ca.glob("*ca*.pem"))
    _approve_later(line, ca_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SPE_E3" in out
