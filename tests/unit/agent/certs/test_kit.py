"""Client kits and ``certs due``, in-process, with both crypto backends."""

import datetime
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import types

import pytest

from dbtls_agent import cli
from dbtls_agent.certs import due as certs_due
from dbtls_agent.certs import kitcrypto, kittext, nodeinfo
from dbtls_agent.crypto import get_backend
from dbtls_agent.crypto.der import to_pem
from dbtls_agent.roles import common

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")

FACTS = {"hostname": "node101", "fqdn": "node101-env1.example.com", "env_domain": "env1.example.com",
         "env_name": "env1", "addresses": ["10.1.2.3"]}
HOST = "node101-env1.example.com"


class Agent:
    def __init__(self, cert_dir, capsys, monkeypatch):
        self.cert_dir = str(cert_dir)
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def run(self, *argv, stdin=b"", expect=0):
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            code = cli.main(list(argv) + ["--cert-dir", self.cert_dir])
        except SystemExit as exc:  # argparse refusing an argument
            code = exc.code
        out, err = self.capsys.readouterr()
        assert code == expect, err
        return out if expect == 0 else err

    def json(self, *argv):
        return json.loads(self.run(*argv))

    def kit(self, *extra, user="webadmin"):
        return self.json("kit", "build", "--user", user, "--layer", "postgres", "--host", HOST, *extra)

    def issue_node_client(self):
        """The node's own client certificate for webadmin, as an install makes it."""
        self.run("ca", "init", "--env-name", "env1")
        csr = self.run("csr", "--kind", "client")
        signed = json.loads(self.run("ca", "sign", stdin=csr.encode()))
        bundle = signed["certificates"][0]["certificate"] + signed["ca"]["certificate"]
        self.run("install-certs", "--owner", "nobody", stdin=bundle.encode())


@pytest.fixture(params=["cryptography", "openssl"])
def agent(request, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DBTLS_CRYPTO_BACKEND", request.param)
    monkeypatch.setattr(nodeinfo, "collect", lambda *a, **k: dict(FACTS))
    return Agent(tmp_path / "SSL-TLS", capsys, monkeypatch)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def openssl(*args):
    proc = subprocess.run(["openssl"] + list(args), capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_build_writes_every_file_private_and_consistent(agent):
    agent.run("ca", "init", "--env-name", "env1")
    result = agent.kit()
    d = result["kit_dir"]
    assert d == os.path.join(agent.cert_dir, "kits", "webadmin") and result["source"] == "issued"
    assert mode(os.path.join(agent.cert_dir, "kits")) == 0o700 and mode(d) == 0o700
    names = sorted(os.listdir(d))
    assert names == sorted(["root.crt", "client.crt", "client.key", "client.pk8", "client.p12",
                            "client.p12.password", "my.cnf", "README.txt", "kit.json"])
    assert all(mode(os.path.join(d, n)) == 0o600 for n in names)
    assert read(os.path.join(d, "root.crt")) == read(os.path.join(agent.cert_dir, "ca", "ca.crt"))
    openssl("verify", "-CAfile", os.path.join(d, "root.crt"), os.path.join(d, "client.crt"))
    cert_pub = openssl("x509", "-in", os.path.join(d, "client.crt"), "-noout", "-pubkey")
    # PKCS#8 DER and PKCS#12 (password from the file) hold the same key and certificate as the PEM files.
    assert openssl("pkey", "-inform", "DER", "-in", os.path.join(d, "client.pk8"), "-pubout") == cert_pub
    assert openssl("pkey", "-in", os.path.join(d, "client.key"), "-pubout") == cert_pub
    assert read(os.path.join(d, "client.pk8")).startswith(b"\x30")
    openssl("pkcs8", "-inform", "DER", "-nocrypt", "-in", os.path.join(d, "client.pk8"))
    p12 = ["pkcs12", "-in", os.path.join(d, "client.p12"), "-passin", "file:" + os.path.join(d, "client.p12.password")]
    p12_key = os.path.join(os.path.dirname(agent.cert_dir), "p12.key")
    openssl(*(p12 + ["-nocerts", "-nodes", "-out", p12_key]))
    assert openssl("pkey", "-in", p12_key, "-pubout") == cert_pub
    certs = openssl(*(p12 + ["-nokeys", "-clcerts"]))
    assert read(os.path.join(d, "client.crt")).strip() in certs
    assert read(os.path.join(d, "root.crt")).strip() in openssl(*(p12 + ["-nokeys", "-cacerts"]))
    # The subject is the user; expiry reported as issued.
    assert result["certificate"]["subject"] == "CN=webadmin" and result["certificate"]["days_left"] in (364, 365)


def test_no_secret_in_output_and_strings_verify_the_server(agent):
    agent.run("ca", "init", "--env-name", "env1")
    out = agent.run("kit", "build", "--user", "webadmin", "--layer", "postgres", "--host", HOST)
    d = json.loads(out)["kit_dir"]
    password = read(os.path.join(d, "client.p12.password")).decode()
    assert len(password) >= 24
    shown = agent.run("kit", "show", "--user", "webadmin")
    readme = read(os.path.join(d, "README.txt")).decode()
    for text in (out, shown, readme):
        assert password not in text and "PRIVATE KEY" not in text
    strings = json.loads(shown)["connections"][0]["strings"]
    assert "sslmode=verify-full" in strings["psql"] and "host=" + HOST in strings["psql"]
    assert strings["pgjdbc"].startswith(f"jdbc:postgresql://{HOST}:5432/postgres?")
    assert "sslkey=" + os.path.join(d, "client.pk8") in strings["pgjdbc"]
    assert "sslrootcert=" + os.path.join(d, "root.crt") in strings["pgjdbc"]
    assert strings["psql"] in readme and strings["pgjdbc"] in readme


def test_openssl_backend_never_puts_the_password_on_a_command_line(tmp_path, monkeypatch):
    backend = get_backend("openssl")
    ca_key = backend.generate_key("rsa2048")
    ca = backend.create_ca(ca_key, "env CA", 30)
    key = backend.generate_key("rsa2048")
    cert = backend.sign_csr(backend.make_csr(key, "webadmin", [], "client"), ca, ca_key, "client", "webadmin", [], 30)
    seen = []
    real = subprocess.run

    def spy(argv, *a, **k):
        seen.append(list(argv))
        return real(argv, *a, **k)

    monkeypatch.setattr(kitcrypto.subprocess, "run", spy)
    password = b"Sekrit-password-123"
    data = kitcrypto.pkcs12(backend, key, cert, ca, "webadmin", password)
    assert seen and all(password.decode() not in " ".join(argv) for argv in seen)
    assert any("-passout" in argv for argv in seen)
    path = tmp_path / "p.p12"
    path.write_bytes(data)
    (tmp_path / "pw").write_bytes(password)
    openssl("pkcs12", "-in", str(path), "-passin", "file:" + str(tmp_path / "pw"), "-nokeys")


@pytest.mark.parametrize("name", ["cryptography", "openssl"])
def test_pkcs8_der_from_traditional_pem(name):
    backend = get_backend(name)
    pkcs8_pem = backend.generate_key("ecdsa-p256")
    traditional = subprocess.run(["openssl", "ec"], input=pkcs8_pem, capture_output=True,
                                 check=True).stdout
    assert b"BEGIN EC PRIVATE KEY" in traditional
    der = kitcrypto.pkcs8_der(backend, traditional)
    assert backend.public_key_sha256(to_pem("PRIVATE KEY", der)) == backend.public_key_sha256(pkcs8_pem)


def test_reuses_the_node_admin_certificate(agent):
    agent.issue_node_client()
    result = agent.kit()
    assert result["source"] == "node-client"
    d = result["kit_dir"]
    assert read(os.path.join(d, "client.key")) == read(os.path.join(agent.cert_dir, "client", "client.key"))
    assert read(os.path.join(d, "client.crt")) == read(os.path.join(agent.cert_dir, "client", "client.crt"))


def test_rebuild_keeps_the_certificate_until_it_is_due(agent):
    agent.run("ca", "init", "--env-name", "env1")
    first = agent.kit()
    d = first["kit_dir"]
    password = read(os.path.join(d, "client.p12.password"))
    again = agent.kit("--host", "10.1.2.3")
    assert again["source"] == "kit" and again["certificate"]["serial"] == first["certificate"]["serial"]
    assert read(os.path.join(d, "client.p12.password")) != password  # each build seals the PKCS#12 anew
    assert [c["host"] for c in again["connections"]] == [HOST, "10.1.2.3"]
    agent.run("kit", "build", "--user", "webadmin", "--renew-within", "-1", expect=2)
    renewed = agent.kit("--renew-within", "400")
    assert renewed["source"] == "issued" and renewed["certificate"]["serial"] != first["certificate"]["serial"]


def test_policy_decides_who_gets_a_kit(agent):
    agent.run("ca", "init", "--env-name", "env1")
    err = agent.run("kit", "build", "--user", "alice", "--layer", "postgres", "--host", HOST, expect=2)
    assert "neither the postgres administrator" in err and len(err.strip().splitlines()) == 1
    agent.run("kit", "build", "--user", "root", "--layer", "postgres", "--host", HOST, expect=2)
    agent.run("ca", "policy", "--client-user", "alice")
    assert agent.kit(user="alice")["certificate"]["subject"] == "CN=alice"
    root = agent.json("kit", "build", "--user", "root", "--layer", "mysql", "--host", HOST)
    assert root["connections"][0]["port"] == 3306


def test_a_user_cert_user_gets_a_kit_with_that_certificate(agent):
    from dbtls_agent.commands import usercert

    agent.run("ca", "init", "--env-name", "env1")
    target = usercert._prepare(agent.cert_dir, "bob")
    issued = usercert._issue(agent.cert_dir, "bob", target)
    result = agent.json("kit", "build", "--user", "bob", "--layer", "mysql", "--host", HOST)
    assert result["source"] == "user-cert" and result["certificate"]["serial"] == issued["serial"]
    assert read(os.path.join(result["kit_dir"], "client.key")) == read(issued["key_path"])


@pytest.mark.parametrize("argv,message", [
    (["--user", "../x"], "invalid database user name"),
    (["--user", "webadmin", "--host", "bad host!"], "invalid SAN"),
    (["--user", "webadmin", "--host", HOST], "no CA in"),
])
def test_bad_input_is_one_line(agent, argv, message):
    if message != "no CA in":
        agent.run("ca", "init", "--env-name", "env1")
    err = agent.run("kit", "build", "--layer", "postgres", *argv, expect=2)
    assert message in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(os.path.join(agent.cert_dir, "kits"))


def test_layer_and_host_default_from_the_node(agent, monkeypatch):
    agent.run("ca", "init", "--env-name", "env1")
    monkeypatch.setattr(nodeinfo, "compute_type", lambda *a: "postgres")
    result = agent.json("kit", "build", "--user", "webadmin")
    assert result["layer"] == "postgres" and result["hosts"] == ["env1.example.com"]
    monkeypatch.setattr(nodeinfo, "compute_type", lambda *a: "")
    assert "pass --layer" in agent.run("kit", "build", "--user", "webadmin", expect=2)


def test_remove_and_uninstall_cleanup(agent):
    agent.run("ca", "init", "--env-name", "env1")
    agent.kit()
    removed = agent.json("kit", "remove", "--user", "webadmin")
    assert removed["removed"] is True and not os.path.exists(os.path.join(agent.cert_dir, "kits"))
    assert "no kit for user" in agent.run("kit", "show", "--user", "webadmin", expect=2)
    assert agent.json("kit", "remove", "--user", "webadmin")["removed"] is False
    agent.kit()
    assert common.remove_certs(types.SimpleNamespace(cert_dir=agent.cert_dir)) is True
    assert not os.path.exists(os.path.join(agent.cert_dir, "kits"))
    assert os.path.exists(os.path.join(agent.cert_dir, "ca", "ca.key"))


def test_certs_due(agent):
    agent.issue_node_client()
    agent.kit(user="webadmin")
    report = agent.json("certs", "due", "--within-days", "30")
    roles = {c["role"]: c for c in report["certificates"]}
    assert set(roles) == {"ca", "client", "client-root", "kit"}
    assert report["any_due"] is False and report["due"] == []
    assert roles["client"]["days_left"] in (364, 365) and roles["ca"]["renewed_by"] == "CA rotation"
    report = agent.json("certs", "due", "--within-days", "400")
    assert sorted(c["role"] for c in report["certificates"] if c["due"]) == ["client", "kit"]
    assert report["any_due"] is True and len(report["due"]) == 2
    # A year on, the CA is still fine and the client certificates are past their end.
    later = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(days=366)
    report = certs_due.due(agent.cert_dir, get_backend(), 30, now=later)
    assert {c["role"]: c["days_left"] < 0 for c in report["certificates"]}["kit"] is True
    assert sorted(c["role"] for c in report["certificates"] if not c["due"]) == ["ca", "client-root"]


def test_after_a_ca_rotation_kits_are_due_and_rebuilt_from_the_new_ca(agent):
    agent.issue_node_client()
    first = agent.kit()
    assert first["source"] == "node-client"
    agent.run("ca", "init", "--rotate", "--env-name", "env1")
    report = agent.json("certs", "due", "--within-days", "30")
    reasons = {c["role"]: c["reason"] for c in report["certificates"]}
    assert reasons["kit"] == reasons["client"] == "not issued by the current CA", reasons
    assert reasons["ca"] is None and report["any_due"] is True
    rebuilt = agent.kit()
    assert rebuilt["source"] == "issued" and rebuilt["certificate"]["serial"] != first["certificate"]["serial"]
    d = rebuilt["kit_dir"]
    assert read(os.path.join(d, "root.crt")) == read(os.path.join(agent.cert_dir, "ca", "ca.crt"))
    openssl("verify", "-CAfile", os.path.join(d, "root.crt"), os.path.join(d, "client.crt"))
    reasons = {c["role"]: c["reason"] for c in agent.json("certs", "due")["certificates"]}
    assert reasons["kit"] is None and reasons["client"] == "not issued by the current CA"


def test_certs_due_reports_unreadable_and_user_certificates(agent):
    agent.run("ca", "init", "--env-name", "env1")
    users = os.path.join(agent.cert_dir, "client", "users", "alice")
    os.makedirs(users)
    with open(os.path.join(users, "client.crt"), "wb") as handle:
        handle.write(b"not a certificate")
    report = agent.json("certs", "due")
    alice = [c for c in report["certificates"] if c["role"] == "user-client"][0]
    assert alice["due"] is True and alice["error"] and alice["renewed_by"] == "user-cert"
    assert alice["reason"] == "unreadable"
    agent.run("certs", "due", "--within-days", "-1", expect=2)


def test_my_cnf_and_mysql_strings():
    text = kittext.my_cnf("/k")
    assert "[client]\nssl-ca=/k/root.crt\nssl-cert=/k/client.crt\nssl-key=/k/client.key\n" in text
    assert text.index("[client-mariadb]") < text.index("ssl-verify-server-cert")
    strings = kittext.connection_strings("mysql", "root", "/k", ["db.example.com"], 3306)[0]["strings"]
    assert "--ssl-verify-server-cert" in strings["mariadb-explicit"]
    assert "--ssl-mode=VERIFY_IDENTITY" in strings["mysql8"]
    assert "sslMode=VERIFY_IDENTITY" in strings["connector-j"] and "file:/k/client.p12" in strings["connector-j"]
    pg = kittext.connection_strings("postgres", "webadmin", "/my kits", ["h"], 5432)[0]["strings"]
    assert "sslrootcert='/my kits/root.crt'" in pg["libpq"]
    assert "sslrootcert=/my%20kits/root.crt" in pg["pgjdbc"]


def test_the_dashboard_summary_says_where_and_how_without_secrets():
    strings = kittext.connection_strings("postgres", "webadmin", "/k/webadmin", ["db.example"], 5432)
    kit = {"user": "webadmin", "kit_dir": "/k/webadmin", "certificate": {"not_after": "2027-12-03T00:00:00Z"},
           "connections": strings}
    text = kittext.summary(kit, "node7")
    assert text.splitlines()[0] == ("Client kit of webadmin in /k/webadmin on node node7 "
                                    "(certificate valid until 2027-12-03T00:00:00Z).")
    assert "sslmode=verify-full" in text and "host=db.example" in text
    assert "password" not in text.lower()
