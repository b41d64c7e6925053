"""Entra side of the simulated tenant: msal with secret and certificate, AADSTS errors, 401/403."""

from __future__ import annotations

import datetime as dt
import hashlib

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from simhelpers import FLOW_FREE, Graph, acquire_token, error_of

from batch.simulator import RunningSimulator, SimulatorOptions, start_simulator


def _certificate() -> tuple[str, str, str]:
    """A self-signed certificate: (private key PEM, certificate PEM, SHA-1 hex thumbprint)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "m365batch test app")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    thumb = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()  # noqa: S324
    return key_pem, cert_pem, thumb


def test_msal_acquires_a_token_with_the_default_secret(sim: RunningSimulator) -> None:
    result = acquire_token(sim)
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] > 3000
    assert result["token_source"] == "identity_provider"
    graph = Graph(sim, result["access_token"])
    assert graph.get("/organization").json()["value"][0]["id"] == sim.tenant_id


@pytest.mark.parametrize("form", ["sha1-thumbprint", "sha256-from-public-certificate"])
def test_msal_acquires_a_token_with_a_certificate(sim: RunningSimulator, form: str) -> None:
    key_pem, cert_pem, thumb = _certificate()
    client_id, secret = sim.add_app(["User.Read.All"], certificate_pem=cert_pem.encode())
    assert secret is None
    credential = (
        {"private_key": key_pem, "thumbprint": thumb}
        if form == "sha1-thumbprint"
        else {"private_key": key_pem, "public_certificate": cert_pem}
    )
    result = acquire_token(sim, client_id, credential)
    assert "access_token" in result, result
    graph = Graph(sim, result["access_token"])
    assert graph.get("/users?$top=1").status_code == 200


def test_wrong_secret_gives_aadsts7000215(sim: RunningSimulator) -> None:
    result = acquire_token(sim, credential="not-the-secret")
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert result["error_codes"] == [7000215]
    assert result["correlation_id"] and result["trace_id"] and result["timestamp"]


def test_unregistered_certificate_gives_aadsts700027(sim: RunningSimulator) -> None:
    _, registered, _ = _certificate()
    client_id, _ = sim.add_app(["User.Read.All"], certificate_pem=registered.encode())
    other_key, _, other_thumb = _certificate()
    result = acquire_token(sim, client_id, {"private_key": other_key, "thumbprint": other_thumb})
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS700027:")


def test_certificate_signed_by_another_key_fails_signature(sim: RunningSimulator) -> None:
    _, cert_pem, thumb = _certificate()
    other_key, _, _ = _certificate()
    client_id, _ = sim.add_app(["User.Read.All"], certificate_pem=cert_pem.encode())
    result = acquire_token(sim, client_id, {"private_key": other_key, "thumbprint": thumb})
    assert result["error"] == "invalid_client"
    assert (
        "AADSTS700027: Client assertion failed signature validation." in result["error_description"]
    )


def test_certificate_without_an_rsa_key_fails_signature(sim: RunningSimulator) -> None:
    """Client assertions are RS256 or PS256: a certificate whose key is not RSA validates none."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "m365batch test app")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    thumb = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()  # noqa: S324
    client_id, _ = sim.add_app(
        ["User.Read.All"], certificate_pem=cert.public_bytes(serialization.Encoding.PEM)
    )
    rsa_key, _, _ = _certificate()
    result = acquire_token(sim, client_id, {"private_key": rsa_key, "thumbprint": thumb})
    assert result["error"] == "invalid_client"
    assert (
        "AADSTS700027: Client assertion failed signature validation." in result["error_description"]
    )


def test_unknown_app_and_unknown_tenant(sim: RunningSimulator) -> None:
    result = acquire_token(sim, "11111111-1111-1111-1111-111111111111", "x")
    assert result["error"] == "unauthorized_client"
    assert result["error_description"].startswith("AADSTS700016:")
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            sim.client_id,
            client_credential=sim.client_secret,
            authority=f"{sim.authority_host}/22222222-2222-2222-2222-222222222222",
            verify=str(sim.ca_path),
            instance_discovery=False,
        )


def test_bad_scope_and_grant_are_refused(sim: RunningSimulator) -> None:
    token_url = f"{sim.authority_host}/{sim.tenant_id}/oauth2/v2.0/token"
    base = {"client_id": sim.client_id, "client_secret": sim.client_secret}
    bad_scope = requests.post(
        token_url,
        verify=str(sim.ca_path),
        timeout=10,
        data={**base, "grant_type": "client_credentials", "scope": "User.Read"},
    )
    assert bad_scope.status_code == 400
    assert bad_scope.json()["error"] == "invalid_scope"
    bad_grant = requests.post(
        token_url,
        verify=str(sim.ca_path),
        timeout=10,
        data={**base, "grant_type": "password", "scope": "https://graph.microsoft.com/.default"},
    )
    assert bad_grant.json()["error"] == "unsupported_grant_type"
    no_credential = requests.post(
        token_url,
        verify=str(sim.ca_path),
        timeout=10,
        data={
            "client_id": sim.client_id,
            "grant_type": "client_credentials",
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert no_credential.status_code == 401
    assert no_credential.json()["error_description"].startswith("AADSTS7000218:")


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer abc.def.ghi", "Basic dXNlcjpwYXNz"])
def test_missing_or_bad_tokens_get_401(sim: RunningSimulator, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = requests.get(
        f"{sim.graph_url}/users", headers=headers, verify=str(sim.ca_path), timeout=10
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == "InvalidAuthenticationToken"


def test_token_of_another_simulator_is_refused(sim: RunningSimulator, tmp_path) -> None:
    with start_simulator(tmp_path / "other") as other:
        foreign = acquire_token(other)["access_token"]
    response = Graph(sim, foreign).get("/users")
    assert response.status_code == 401
    assert error_of(response)["code"] == "InvalidAuthenticationToken"


def test_early_token_expiry(sim: RunningSimulator) -> None:
    graph = Graph(sim)
    assert graph.get("/organization").status_code == 200
    sim.options.token_expire_after = 0.0
    response = graph.get("/organization")
    assert response.status_code == 401
    assert "expired" in error_of(response)["message"]
    assert acquire_token(sim)["expires_in"] == 3599  # expires_in still promises more


def test_roles_are_enforced_per_endpoint(sim: RunningSimulator) -> None:
    client_id, secret = sim.add_app(["User.Read.All"])
    reader = Graph(sim, acquire_token(sim, client_id, secret)["access_token"])
    assert reader.get("/users?$top=2").status_code == 200
    denied = reader.assign(reader.get("/users?$top=1").json()["value"][0]["id"], [FLOW_FREE])
    assert denied.status_code == 403
    error = error_of(denied)
    assert error == {
        **error,
        "code": "Authorization_RequestDenied",
        "message": "Insufficient privileges to complete the operation.",
    }
    assert reader.get("/subscribedSkus").status_code == 403
    # signInActivity needs AuditLog.Read.All on top of the user read permission.
    assert reader.get("/users?$select=id,signInActivity").status_code == 403
    # In a batch, each item is checked on its own.
    batch = reader.batch(
        [
            {"id": "1", "method": "GET", "url": "/users?$top=1"},
            {"id": "2", "method": "GET", "url": "/subscribedSkus"},
        ]
    )
    statuses = {r["id"]: r["status"] for r in batch.json()["responses"]}
    assert statuses == {"1": 200, "2": 403}


def test_license_assignment_role_is_enough_to_assign(sim: RunningSimulator) -> None:
    client_id, secret = sim.add_app(["LicenseAssignment.ReadWrite.All", "User.Read.All"])
    assigner = Graph(sim, acquire_token(sim, client_id, secret)["access_token"])
    user = assigner.get("/users/o'brien@contoso.example").json()
    assert assigner.assign(user["id"], [FLOW_FREE]).status_code == 200


def test_default_app_is_stable_per_state(state_dir, tmp_path) -> None:
    with start_simulator(state_dir, SimulatorOptions()) as first:
        ids = (first.client_id, first.client_secret, first.tenant_id, first.ca_path.read_bytes())
    with start_simulator(state_dir) as second:
        assert (
            second.client_id,
            second.client_secret,
            second.tenant_id,
            second.ca_path.read_bytes(),
        ) == ids
        assert "access_token" in acquire_token(second)
