"""Both crypto backends must issue the same certificates and agree on how they read them."""

import datetime
import shutil
import subprocess

import pytest

from dbtls_agent.crypto import KEY_TYPES, get_backend
from dbtls_agent.crypto.base import new_serial
from dbtls_agent.errors import AgentError

BACKENDS = ["cryptography", "openssl"]
SANS = ["DNS:node1", "DNS:node1-env.example.com", "DNS:env.example.com", "IP:10.0.0.5", "IP:fd00::5"]

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")


def issue(backend_name, key_type):
    """CA + server + client issued entirely by one backend."""
    b = get_backend(backend_name)
    ca_key = b.generate_key(key_type)
    ca = b.create_ca(ca_key, "env CA", 3650)
    server_key = b.generate_key(key_type)
    server = b.sign_csr(b.make_csr(server_key, "node1", SANS, "server"), ca, ca_key, "server", "node1", SANS, 3650)
    client_key = b.generate_key(key_type)
    client = b.sign_csr(b.make_csr(client_key, "webadmin", [], "client"), ca, ca_key, "client", "webadmin", [], 365)
    return {"ca": ca, "ca_key": ca_key, "server": server, "server_key": server_key, "client": client, "client_key": client_key}


@pytest.fixture(scope="module")
def issued():
    cache = {}

    def get(backend_name, key_type):
        if (backend_name, key_type) not in cache:
            cache[backend_name, key_type] = issue(backend_name, key_type)
        return cache[backend_name, key_type]

    return get


def _days(info):
    start = datetime.datetime.strptime(info["not_before"], "%Y-%m-%dT%H:%M:%SZ")
    end = datetime.datetime.strptime(info["not_after"], "%Y-%m-%dT%H:%M:%SZ")
    return (end - start).days


def profile(info):
    """The parts of a parsed certificate that must be identical whichever backend issued it."""
    keep = (
        "subject", "issuer", "sans", "is_ca", "path_length", "key_usage", "extended_key_usage",
        "extensions", "critical_extensions", "key_type", "signature_algorithm", "serial_bytes", "version",
    )
    out = {k: info[k] for k in keep}
    out["days"] = _days(info)
    out["aki_is_issuer_ski"] = info["authority_key_id"] is not None
    return out


@pytest.mark.parametrize("key_type", ["rsa2048", "ecdsa-p256"])
def test_backends_issue_equivalent_certificates(issued, key_type):
    a, b = issued("cryptography", key_type), issued("openssl", key_type)
    parser = get_backend("cryptography")
    for role in ("ca", "server", "client"):
        assert profile(parser.parse_cert(a[role])) == profile(parser.parse_cert(b[role])), role


@pytest.mark.parametrize("issuer", BACKENDS)
@pytest.mark.parametrize("key_type", ["rsa2048", "ecdsa-p256"])
def test_parsers_agree(issued, issuer, key_type):
    made = issued(issuer, key_type)
    for role in ("ca", "server", "client"):
        assert get_backend("cryptography").parse_cert(made[role]) == get_backend("openssl").parse_cert(made[role])


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("key_type", ["rsa2048", "ecdsa-p256"])
def test_profiles(issued, backend_name, key_type):
    made = issued(backend_name, key_type)
    b = get_backend(backend_name)
    ca, server, client = (b.parse_cert(made[r]) for r in ("ca", "server", "client"))
    assert ca["is_ca"] and ca["path_length"] == 0
    assert ca["critical_extensions"] == ["basicConstraints", "keyUsage"]
    assert ca["key_usage"] == ["keyCertSign", "cRLSign"]
    assert ca["subject_key_id"] and ca["subject"] == ca["issuer"] == "CN=env CA"
    assert _days(ca) == 3650 and _days(server) == 3650 and _days(client) == 365
    rsa = key_type.startswith("rsa")
    assert server["key_usage"] == (["digitalSignature", "keyEncipherment"] if rsa else ["digitalSignature"])
    assert server["extended_key_usage"] == ["serverAuth"] and not server["is_ca"]
    assert server["sans"] == SANS
    assert server["authority_key_id"] == ca["subject_key_id"]
    assert client["extended_key_usage"] == ["clientAuth"] and client["cn"] == "webadmin" and client["sans"] == []
    for info in (ca, server, client):
        assert info["serial_bytes"] == 16 and int(info["serial"], 16) > 0
        assert info["signature_algorithm"] == ("sha256WithRSAEncryption" if rsa else "ecdsa-with-SHA256")
    assert len({ca["serial"], server["serial"], client["serial"]}) == 3


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_chain_and_key_match(issued, backend_name, tmp_path):
    made = issued(backend_name, "rsa2048")
    b = get_backend(backend_name)
    for role in ("server", "client"):
        b.verify_chain(made[role], made["ca"])
        assert b.key_matches_cert(made[role + "_key"], made[role])
        assert not b.key_matches_cert(made["ca_key"], made[role])
        (tmp_path / "ca.pem").write_bytes(made["ca"])
        (tmp_path / "leaf.pem").write_bytes(made[role])
        out = subprocess.run(
            ["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
        )
        assert out.returncode == 0 and b": OK" in out.stdout


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_verify_rejects_foreign_ca(issued, backend_name):
    b = get_backend(backend_name)
    other = issued("cryptography" if backend_name == "openssl" else "openssl", "rsa2048")
    with pytest.raises(AgentError):
        b.verify_chain(issued(backend_name, "rsa2048")["server"], other["ca"])
    with pytest.raises(AgentError, match="not a CA"):
        b.verify_chain(issued(backend_name, "rsa2048")["server"], issued(backend_name, "rsa2048")["client"])


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_key_types(backend_name, key_type):
    b = get_backend(backend_name)
    key = b.generate_key(key_type)
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert b.public_key_info(key)["key_type"] == key_type
    csr = b.parse_csr(b.make_csr(key, "node1", ["DNS:node1"], "server"))
    assert csr["signature_valid"] and csr["key_type"] == key_type and csr["extended_key_usage"] == ["serverAuth"]


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_unknown_key_type(backend_name):
    with pytest.raises(AgentError, match="unknown key type"):
        get_backend(backend_name).generate_key("dsa1024")


def test_forced_backend(monkeypatch):
    monkeypatch.setenv("DBTLS_CRYPTO_BACKEND", "openssl")
    assert get_backend().name == "openssl"
    monkeypatch.setenv("DBTLS_CRYPTO_BACKEND", "cryptography")
    assert get_backend().name == "cryptography"
    monkeypatch.setenv("DBTLS_CRYPTO_BACKEND", "gnutls")
    with pytest.raises(AgentError, match="unknown crypto backend"):
        get_backend()


def test_serials_are_16_bytes_and_random():
    serials = {new_serial() for _ in range(200)}
    assert len(serials) == 200
    assert all(len(s.to_bytes(16, "big", signed=True)) == 16 and (1 << 126) <= s < (1 << 127) for s in serials)
