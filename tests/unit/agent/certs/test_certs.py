"""The certificate subcommands end to end, in-process, with both crypto backends."""

import io
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from dbtls_agent import cli
from dbtls_agent.certs import nodeinfo
from dbtls_agent.crypto import get_backend
from dbtls_agent.crypto.der import pem_blocks, to_pem
from dbtls_agent.errors import AgentError

FACTS = {
    "hostname": "node101",
    "fqdn": "node101-env1.example.com",
    "env_domain": "env1.example.com",
    "env_name": "env1",
    "addresses": ["10.1.2.3", "fd00::3"],
}


class Agent:
    """Runs ``dbtls-agent`` in-process against one certificate directory."""

    def __init__(self, cert_dir, capsys, monkeypatch):
        self.cert_dir = str(cert_dir)
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def run(self, *argv, stdin=b"", expect=0):
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        args = list(argv)
        args += ["--cert-dir", self.cert_dir]
        code = cli.main(args)
        out, err = self.capsys.readouterr()
        assert code == expect, err
        return out if expect == 0 else err

    def issue_all(self, *csr_args):
        self.run("ca", "init", "--env-name", "env1")
        server = self.run("csr", "--kind", "server", "--san", "localhost", "--san", "127.0.0.1", *csr_args)
        client = self.run("csr", "--kind", "client", *csr_args)
        signed = json.loads(self.run("ca", "sign", stdin=(server + client).encode()))
        bundle = "".join(c["certificate"] for c in signed["certificates"]) + signed["ca"]["certificate"]
        return signed, json.loads(self.run("install-certs", "--owner", "nobody", stdin=bundle.encode()))


@pytest.fixture(params=["cryptography", "openssl"])
def agent(request, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DBTLS_CRYPTO_BACKEND", request.param)
    monkeypatch.setattr(nodeinfo, "collect", lambda *a, **k: dict(FACTS))
    return Agent(tmp_path / "SSL-TLS", capsys, monkeypatch)


def snapshot(root):
    """Path -> (content, mode, inode) of every file under root, to prove nothing was touched.

    The node lock's empty file in the state directory is not certificate material and is left out.
    """
    result = {}
    for dirpath, _dirs, files in os.walk(str(root)):
        for name in files:
            if name == "lock" and os.path.basename(dirpath) == ".dbtls-state":
                continue
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            with open(path, "rb") as handle:
                result[path] = (handle.read(), st.st_mode, st.st_ino)
    return result


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_full_issue(agent):
    signed, installed = agent.issue_all()
    d = agent.cert_dir
    assert [c["kind"] for c in signed["certificates"]] == ["server", "client"]
    assert [c["index"] for c in signed["certificates"]] == [0, 1]
    server = signed["certificates"][0]
    assert server["cn"] == "node101"
    assert server["sans"] == [
        "DNS:node101", "DNS:node101-env1.example.com", "DNS:env1.example.com", "DNS:localhost",
        "IP:10.1.2.3", "IP:fd00::3", "IP:127.0.0.1",
    ]
    assert signed["certificates"][1]["cn"] == "webadmin"
    assert installed["owner"] == "nobody"
    assert {i["kind"] for i in installed["installed"]} == {"server", "client"}
    for kind in ("server", "client"):
        assert mode(os.path.join(d, kind)) == 0o700
        assert mode(os.path.join(d, kind, kind + ".key")) == 0o600
        assert os.stat(os.path.join(d, kind, kind + ".key")).st_uid == 65534  # nobody
        for name in (kind + ".crt", "root.crt"):
            assert os.path.exists(os.path.join(d, kind, name))
        out = subprocess.run(
            ["openssl", "verify", "-CAfile", os.path.join(d, kind, "root.crt"), os.path.join(d, kind, kind + ".crt")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
        )
        assert out.returncode == 0, out.stdout
    assert mode(os.path.join(d, "ca")) == 0o700 and mode(os.path.join(d, "ca", "ca.key")) == 0o600
    assert os.listdir(os.path.join(d, ".pending")) == []
    report = json.loads(agent.run("inspect"))
    roles = {c["role"]: c for c in report["certificates"]}
    assert set(roles) == {"server", "server-root", "client", "client-root", "ca"}
    assert roles["server"]["key_matches_cert"] is True and roles["client"]["key_matches_cert"] is True
    assert roles["server"]["days_left"] in (824, 825) and roles["client"]["days_left"] in (364, 365)
    assert roles["server"]["issuer"] == roles["ca"]["subject"] == "CN=env1 CA"


def test_idempotent(agent):
    first_root = agent.run("ca", "init", "--env-name", "env1")
    before = snapshot(agent.cert_dir)
    assert agent.run("ca", "init", "--env-name", "env1") == first_root
    assert agent.run("ca", "init", "--cn", "something else") == first_root
    assert snapshot(agent.cert_dir) == before
    csr1 = agent.run("csr", "--kind", "server")
    csr2 = agent.run("csr", "--kind", "server")
    b = get_backend()
    assert b.parse_csr(csr1.encode())["spki_sha256"] == b.parse_csr(csr2.encode())["spki_sha256"]
    signed = json.loads(agent.run("ca", "sign", stdin=csr1.encode()))
    bundle = (signed["certificates"][0]["certificate"] + signed["ca"]["certificate"]).encode()
    assert json.loads(agent.run("install-certs", stdin=bundle))["installed"][0]["changed"] is True
    after_install = snapshot(agent.cert_dir)
    assert json.loads(agent.run("install-certs", stdin=bundle))["installed"][0]["changed"] is False
    assert {p: v[:2] for p, v in snapshot(agent.cert_dir).items()} == {p: v[:2] for p, v in after_install.items()}
    # With the key installed, a new CSR still reuses it.
    csr3 = agent.run("csr", "--kind", "server")
    assert b.parse_csr(csr3.encode())["spki_sha256"] == b.parse_csr(csr1.encode())["spki_sha256"]


def test_reissue_server_only_keeps_old_files_until_install(agent):
    agent.issue_all()
    d = agent.cert_dir
    old = snapshot(d)
    csr = agent.run("csr", "--kind", "server", "--rotate", "--key-type", "ecdsa-p256")
    # The running server's files are untouched while the new key waits in .pending/.
    assert {p: v for p, v in snapshot(d).items() if "/.pending/" not in p} == old
    assert os.path.exists(os.path.join(d, ".pending", "server.key"))
    signed = json.loads(agent.run("ca", "sign", stdin=csr.encode()))
    result = json.loads(agent.run("install-certs", "--owner", "nobody",
                                  stdin=(signed["certificates"][0]["certificate"] + signed["ca"]["certificate"]).encode()))
    assert result["installed"][0]["new_key"] is True
    assert not os.path.exists(os.path.join(d, ".pending", "server.key"))
    now = snapshot(d)
    server_key = os.path.join(d, "server", "server.key")
    client_key = os.path.join(d, "client", "client.key")
    assert now[server_key][0] != old[server_key][0] and now[client_key] == old[client_key]
    roles = {c["role"]: c for c in json.loads(agent.run("inspect"))["certificates"]}
    assert roles["server"]["key_type"] == "ecdsa-p256" and roles["server"]["key_matches_cert"]


def test_rotate_ca_keeps_old(agent):
    old_root = agent.run("ca", "init", "--env-name", "env1")
    old_serial = get_backend().parse_cert(old_root.encode())["serial"]
    new_root = agent.run("ca", "init", "--rotate", "--env-name", "env1")
    assert new_root != old_root
    old_dir = os.path.join(agent.cert_dir, "ca", "old-" + old_serial)
    with open(os.path.join(old_dir, "ca.crt")) as handle:
        assert handle.read() == old_root
    assert mode(old_dir) == 0o700 and mode(os.path.join(old_dir, "ca.key")) == 0o600
    assert agent.run("ca", "init") == new_root
    roles = [c["role"] for c in json.loads(agent.run("inspect"))["certificates"]]
    assert roles == ["ca", "ca-old"]


def test_default_ca_name_with_layer(agent):
    root = agent.run("ca", "init", "--env-name", "shop", "--layer", "sqldb")
    assert get_backend().parse_cert(root.encode())["subject"] == "CN=shop sqldb CA"


def test_sign_kind_detection_and_pem_format(agent):
    agent.run("ca", "init")
    client = agent.run("csr", "--kind", "client", "--user", "app_user")
    server = agent.run("csr", "--kind", "server")
    out = agent.run("ca", "sign", "--format", "pem", stdin=(client + server).encode())
    certs = [get_backend().parse_cert(to_pem(label, der)) for label, der in pem_blocks(out.encode())]
    assert [c["cn"] for c in certs] == ["app_user", "node101", "env1 CA"]
    assert certs[0]["extended_key_usage"] == ["clientAuth"] and certs[1]["extended_key_usage"] == ["serverAuth"]
    signed = json.loads(agent.run("ca", "sign", "--kind", "client", "--days", "30", stdin=client.encode()))
    assert signed["certificates"][0]["kind"] == "client"


# ------------------------------------------------------------------------------------- bad inputs


def _foreign_csr(key_bits=2048, ca=False, ec=False, extra_subject=False, eku="server"):
    """A CSR built outside the agent, to feed the CA things our own ``csr`` never makes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec as ec_mod
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec_mod.generate_private_key(ec_mod.SECP384R1()) if ec else rsa.generate_private_key(65537, key_bits)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, "node9")]
    if extra_subject:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil"))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if eku:
        oid = ExtendedKeyUsageOID.SERVER_AUTH if eku == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([oid]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _tampered_csr():
    pem = _foreign_csr()
    (label, der), = pem_blocks(pem)
    der = bytearray(der)
    der[-5] ^= 0xFF  # inside the signature
    return to_pem(label, bytes(der))


BAD_CSRS = {
    "garbage": (lambda: b"hello, I am not a certificate request\n", "unexpected text on stdin"),
    "bad-base64": (lambda: b"-----BEGIN CERTIFICATE REQUEST-----\n@@@@\n-----END CERTIFICATE REQUEST-----\n",
                   "malformed base64"),
    "not-der": (lambda: to_pem("CERTIFICATE REQUEST", b"\x30\x03\x02\x01"), "not valid"),
    "ca-flag": (lambda: _foreign_csr(ca=True), "CA rights"),
    "rsa1024": (lambda: _foreign_csr(key_bits=1024), "1024 bits"),
    "p384": (lambda: _foreign_csr(ec=True), "ecdsa-p384 is not accepted"),
    "tampered": (_tampered_csr, "signature does not verify"),
    "extra-subject": (lambda: _foreign_csr(extra_subject=True), "single CN"),
    "no-eku": (lambda: _foreign_csr(eku=None), "pass --kind"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSRS))
def test_sign_rejects(agent, case):
    make, message = BAD_CSRS[case]
    agent.run("ca", "init")
    good = agent.run("csr", "--kind", "server").encode()
    before = snapshot(agent.cert_dir)
    err = agent.run("ca", "sign", stdin=good + make(), expect=2)
    assert err.startswith("dbtls-agent: error: ") and err.count("\n") == 1 and message in err, err
    assert snapshot(agent.cert_dir) == before


def test_sign_rejects_rsa512_from_openssl(agent, tmp_path):
    agent.run("ca", "init")
    proc = subprocess.run(
        ["openssl", "req", "-new", "-newkey", "rsa:512", "-nodes", "-keyout", str(tmp_path / "k"), "-subj", "/CN=x"],
        capture_output=True, check=False,
    )
    if proc.returncode != 0:
        pytest.skip("this openssl refuses to make 512-bit keys at all")
    err = agent.run("ca", "sign", stdin=proc.stdout, expect=2)
    assert "512 bits" in err


def test_sign_without_ca(agent):
    assert "run 'ca init'" in agent.run("ca", "sign", stdin=b"x", expect=2)


def test_unknown_key_type(agent):
    # argparse refuses a key type outside the vocabulary (vocab.KEY_TYPES are the choices)
    for argv, command in ((["csr", "--kind", "server", "--key-type", "dsa1024"], "csr"),
                          (["ca", "init", "--key-type", "dsa1024"], "ca init")):
        agent.capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            cli.main(argv + ["--cert-dir", agent.cert_dir])
        assert exited.value.code == 2
        assert agent.capsys.readouterr().err.splitlines()[-1] == (
            f"dbtls-agent {command}: error: argument --key-type: invalid choice: 'dsa1024' "
            "(choose from 'rsa2048', 'rsa3072', 'rsa4096', 'ecdsa-p256')")
    with pytest.raises(AgentError, match=r"^unknown key type 'rsa1024' \(choose rsa2048, rsa3072, rsa4096, ecdsa-p256\)$"):
        get_backend(None).generate_key("rsa1024")
    assert not os.path.exists(agent.cert_dir)


@pytest.mark.parametrize("san", ["bad_name!", "-leading.example", "IP:999.1.1.1", "a..b", "x" * 64 + ".com"])
def test_bad_san(agent, san):
    err = agent.run("csr", "--kind", "server", "--san=" + san, expect=2)
    assert "invalid" in err and err.count("\n") == 1
    assert not os.path.exists(agent.cert_dir)


def test_unwritable_dir(agent, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    agent.cert_dir = str(blocker / "SSL-TLS")
    err = agent.run("ca", "init", expect=2)
    assert "is not a directory" in err
    assert agent.run("csr", "--kind", "server", expect=2).startswith("dbtls-agent: error:")
    assert blocker.read_text() == "x"


@pytest.fixture
def public_tmp():
    """A temporary directory other users can traverse (pytest's tmp_path parents are 0700)."""
    path = tempfile.mkdtemp(prefix="dbtls-test-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def test_unwritable_dir_as_unprivileged_user(public_tmp):
    """As a user who may not write the parent, the agent stops before generating anything."""
    if os.geteuid() != 0 or not shutil.which("runuser") or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root, runuser and /usr/bin/python3 to drop to another user")
    tmp_path = public_tmp
    code = tmp_path / "code"
    shutil.copytree(os.path.dirname(cli.__file__), str(code / "dbtls_agent"))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    env = dict(os.environ, PYTHONPATH=str(code), DBTLS_CRYPTO_BACKEND="openssl")
    proc = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-m", "dbtls_agent", "ca", "init", "--cert-dir", str(locked / "x")],
        capture_output=True, env=env, cwd=str(tmp_path), check=False,
    )
    assert proc.returncode == 2 and b"is not writable" in proc.stderr and proc.stderr.count(b"\n") == 1, proc.stderr
    assert os.listdir(str(locked)) == []


def test_unknown_owner_leaves_files_untouched(agent):
    signed, _ = agent.issue_all()
    before = snapshot(agent.cert_dir)
    bundle = (signed["certificates"][0]["certificate"] + signed["ca"]["certificate"]).encode()
    err = agent.run("install-certs", "--owner", "no-such-user-xyz", stdin=bundle, expect=2)
    assert err == "dbtls-agent: error: user 'no-such-user-xyz' does not exist on this node\n"
    assert snapshot(agent.cert_dir) == before


def test_install_rejects_foreign_and_unmatched(agent, tmp_path, capsys, monkeypatch):
    signed, _ = agent.issue_all()
    other = Agent(tmp_path / "other", capsys, monkeypatch)
    other_signed, _ = other.issue_all()
    before = snapshot(agent.cert_dir)
    # Our certificate with somebody else's root: chain check fails.
    bundle = (signed["certificates"][0]["certificate"] + other_signed["ca"]["certificate"]).encode()
    err = agent.run("install-certs", stdin=bundle, expect=2)
    assert "not issued by" in err or "does not verify" in err, err
    # A certificate for a key this node does not have.
    bundle = (other_signed["certificates"][0]["certificate"] + other_signed["ca"]["certificate"]).encode()
    assert "does not match any key" in agent.run("install-certs", stdin=bundle, expect=2)
    assert "exactly one root" in agent.run("install-certs", stdin=signed["certificates"][0]["certificate"].encode(), expect=2)
    assert snapshot(agent.cert_dir) == before


def test_half_present_ca_is_reported(agent):
    agent.run("ca", "init")
    os.unlink(os.path.join(agent.cert_dir, "ca", "ca.key"))
    assert "incomplete CA" in agent.run("ca", "init", expect=2)
    assert "incomplete CA" in agent.run("ca", "sign", stdin=b"x", expect=2)


def test_client_rejects_san(agent):
    assert "server certificates only" in agent.run("csr", "--kind", "client", "--san", "x.example", expect=2)


def test_inspect_empty_and_corrupt(agent):
    assert json.loads(agent.run("inspect"))["certificates"] == []
    agent.issue_all()
    with open(os.path.join(agent.cert_dir, "client", "client.crt"), "w") as handle:
        handle.write("garbage")
    roles = {c["role"]: c for c in json.loads(agent.run("inspect"))["certificates"]}
    assert "error" in roles["client"] and roles["server"]["key_matches_cert"] is True


def _other_node_bundle(agent, tmp_path):
    """Certificates signed for a second node (its own cert dir), by this node's CA."""
    other = Agent(tmp_path / "other-SSL-TLS", agent.capsys, agent.monkeypatch)
    server = other.run("csr", "--kind", "server")
    client = other.run("csr", "--kind", "client")
    return other, server + client


def test_install_pick_own_takes_only_this_nodes_certs(agent, tmp_path):
    agent.run("ca", "init", "--env-name", "env1")
    other, other_csrs = _other_node_bundle(agent, tmp_path)
    mine = agent.run("csr", "--kind", "server") + agent.run("csr", "--kind", "client")
    bundle = agent.run("ca", "sign", "--format", "pem", stdin=(other_csrs + mine).encode())
    # Without --pick-own a foreign certificate is an error and nothing is written.
    before = snapshot(agent.cert_dir)
    assert "does not match any key" in agent.run("install-certs", stdin=bundle.encode(), expect=2)
    assert snapshot(agent.cert_dir) == before
    report = json.loads(agent.run("install-certs", "--pick-own", "--owner", "nobody", stdin=bundle.encode()))
    assert sorted(i["kind"] for i in report["installed"]) == ["client", "server"]
    assert [s["reason"] for s in report["skipped"]] == ["no matching key here"] * 2
    assert report["installed"][0]["cn"] in ("node101", "webadmin")
    # The other node picks its own two from the same bundle.
    other_report = json.loads(other.run("install-certs", "--pick-own", "--owner", "nobody", stdin=bundle.encode()))
    assert len(other_report["installed"]) == 2 and len(other_report["skipped"]) == 2
    b = get_backend()
    for kind in ("server", "client"):
        mine_crt = open(os.path.join(agent.cert_dir, kind, kind + ".crt"), "rb").read()
        theirs_crt = open(os.path.join(other.cert_dir, kind, kind + ".crt"), "rb").read()
        assert mine_crt != theirs_crt
        key = open(os.path.join(agent.cert_dir, kind, kind + ".key"), "rb").read()
        assert b.public_key_sha256(key) == b.parse_cert(mine_crt)["spki_sha256"]


def test_install_pick_own_errors_when_nothing_matches(agent, tmp_path):
    agent.run("ca", "init", "--env-name", "env1")
    agent.run("csr", "--kind", "server")  # this node has a key, but not for these certificates
    _other, other_csrs = _other_node_bundle(agent, tmp_path)
    bundle = agent.run("ca", "sign", "--format", "pem", stdin=other_csrs.encode())
    before = snapshot(agent.cert_dir)
    err = agent.run("install-certs", "--pick-own", stdin=bundle.encode(), expect=2)
    assert "none of the 2 certificates" in err
    assert snapshot(agent.cert_dir) == before


def test_install_without_pick_own_has_no_skipped_field(agent):
    _signed, installed = agent.issue_all()
    assert "skipped" not in installed
