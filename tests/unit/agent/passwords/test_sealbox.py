"""Sealed passwords between nodes: both backends, cross-backend blobs, failures, key file, argv."""

import base64
import io
import json
import os
import shutil
import stat
import subprocess

import pytest

from dbtls_agent import cli
from dbtls_agent.errors import AgentError
from dbtls_agent.passwords import exchange, sealbox

BACKENDS = ["cryptography", "openssl"]
PASSWORDS = {"webadmin": "w3b 'adm\"in' pässwörd", "pgpool": "pgp00l-s3cret-value", "repl": "r:e\\pl"}

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")


class RecordingRunner:
    """Runs openssl for real, recording every argv and the passphrase files it was given."""

    def __init__(self):
        self.calls = []
        self.file_contents = []

    def __call__(self, argv, stdin):
        self.calls.append(list(argv))
        for arg in argv:
            if arg.startswith("file:"):
                with open(arg[5:], "rb") as handle:
                    self.file_contents.append(handle.read().strip())
        proc = subprocess.run(argv, input=stdin, capture_output=True)
        return proc.returncode, proc.stdout, proc.stderr


def sealer(name, runner=None):
    return sealbox.get_sealer(name, runner=runner) if name == "openssl" else sealbox.get_sealer(name)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """One recipient key per backend (RSA generation is the slow part), made through the command code."""
    made = {}
    for name in BACKENDS:
        cert_dir = str(tmp_path_factory.mktemp("cert-" + name))
        public = exchange.make_recipient(cert_dir, sealer(name), fresh=True)
        made[name] = (cert_dir, public)
    return made


def blob_for(name, public, data=None):
    return sealbox.seal(sealer(name), public, json.dumps(data or PASSWORDS).encode())


@pytest.mark.parametrize("sealing", BACKENDS)
@pytest.mark.parametrize("opening", BACKENDS)
def test_round_trip_across_backends(keys, sealing, opening):
    cert_dir, public = keys[opening]
    blob = blob_for(sealing, public)
    assert blob.startswith(sealbox.PREFIX) and "\n" not in blob
    for secret in PASSWORDS.values():
        assert secret not in blob
    assert exchange.open_all(cert_dir, "\n" + blob + "\n\n", sealer(opening)) == PASSWORDS


def test_blobs_merge_first_wins(keys):
    cert_dir, public = keys["cryptography"]
    text = "\n".join([blob_for("openssl", public, {"a": "1"}), blob_for("cryptography", public, {"a": "2", "b": "3"})])
    assert exchange.open_all(cert_dir, text) == {"a": "1", "b": "3"}


def test_private_key_file_is_0600_in_0700_dir(keys):
    for cert_dir, public in keys.values():
        path = exchange.key_path(cert_dir)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert b"PRIVATE KEY" not in public and b"BEGIN PUBLIC KEY" in public


def test_recipient_reuses_recent_key_unless_fresh(tmp_path):
    s = sealer("cryptography")
    first = exchange.make_recipient(str(tmp_path), s)
    assert exchange.make_recipient(str(tmp_path), s) == first
    assert exchange.make_recipient(str(tmp_path), s, fresh=True) != first


def one_line_error(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("name", BACKENDS)
def test_wrong_key_fails_with_one_line(keys, name):
    other = "openssl" if name == "cryptography" else "cryptography"
    blob = blob_for(name, keys[other][1])
    with pytest.raises(AgentError) as excinfo:
        exchange.open_all(keys[name][0], blob, sealer(name))
    assert "another key" in one_line_error(excinfo)


@pytest.mark.parametrize("name", BACKENDS)
def test_wrong_key_with_forged_fingerprint_fails(keys, name):
    """A blob for key B relabelled as for key A still cannot be unwrapped with A."""
    other = "openssl" if name == "cryptography" else "cryptography"
    raw = bytearray(base64.b64decode(blob_for(name, keys[other][1])[len(sealbox.PREFIX):]))
    raw[:32] = sealbox.spki_sha256(keys[name][1])
    blob = sealbox.PREFIX + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(AgentError) as excinfo:
        exchange.open_all(keys[name][0], blob, sealer(name))
    assert "unwrapped" in one_line_error(excinfo)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("where", ["body", "tag", "wrapped", "length"])
def test_tampered_blob_fails(keys, name, where):
    cert_dir, public = keys[name]
    raw = bytearray(base64.b64decode(blob_for(name, public)[len(sealbox.PREFIX):]))
    index = {"body": -40, "tag": -1, "wrapped": 40, "length": 33}[where]
    raw[index] ^= 0x01
    blob = sealbox.PREFIX + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(AgentError) as excinfo:
        exchange.open_all(cert_dir, blob, sealer(name))
    one_line_error(excinfo)


@pytest.mark.parametrize("text", ["not a blob", sealbox.PREFIX + "@@@", sealbox.PREFIX + "AAAA"])
def test_garbage_fails_with_one_line(keys, text):
    with pytest.raises(AgentError) as excinfo:
        exchange.open_all(keys["cryptography"][0], text)
    one_line_error(excinfo)


def test_no_recipient_key_is_a_clear_error(tmp_path, keys):
    blob = blob_for("cryptography", keys["cryptography"][1])
    with pytest.raises(AgentError) as excinfo:
        exchange.open_all(str(tmp_path), blob)
    assert "secrets recipient" in one_line_error(excinfo)


def test_openssl_argv_never_holds_a_secret(tmp_path):
    runner = RecordingRunner()
    s = sealbox.OpensslSealer(runner=runner)
    cert_dir = str(tmp_path)
    public = exchange.make_recipient(cert_dir, s, fresh=True)
    blob = sealbox.seal(s, public, json.dumps(PASSWORDS).encode())
    assert exchange.open_all(cert_dir, blob, s) == PASSWORDS
    verbs = [call[1] for call in runner.calls]
    assert {"genpkey", "pkeyutl", "enc"} <= set(verbs), verbs
    assert any("rsa_padding_mode:oaep" in call for call in runner.calls)
    passphrases = runner.file_contents
    assert len(passphrases) == 2 and passphrases[0] == passphrases[1] and len(passphrases[0]) == 64
    private = open(exchange.key_path(cert_dir), "rb").read()
    needles = list(PASSWORDS.values()) + [p.decode() for p in passphrases]
    needles += [line for line in private.decode().splitlines() if "PRIVATE KEY" not in line]
    for call in runner.calls:
        argv = " ".join(call)
        assert not [n for n in needles if n in argv], call
        assert "-K" not in call and "-k" not in call and "pass:" not in argv and "env:" not in argv, call
    # Files named on argv live in private temporary directories that are gone afterwards.
    for call in runner.calls:
        for arg in call:
            path = arg[5:] if arg.startswith("file:") else arg
            if path.startswith("/") and path != s.binary and not path.startswith(cert_dir):
                assert "dbtls-seal-" in path and not os.path.exists(path), call


def test_known_passwords_reads_node_sources(tmp_path, monkeypatch):
    pool = tmp_path / "pgpool.conf"
    pool.write_text("sr_check_user = 'pgpool'\nsr_check_password = 'it''s secret'\n"
                    "health_check_user = 'hc'\nhealth_check_password = 'md5abcdef'\n")
    auto = tmp_path / "postgresql.auto.conf"
    auto.write_text("primary_conninfo = 'user=replicator password=''p w'' host=node1 port=5432'\n")
    pgpass = tmp_path / ".pgpass"
    pgpass.write_text("*:*:*:other:a\\:b\n")
    meta = tmp_path / "metainf.conf"
    meta.write_text("COMPUTE_TYPE=postgres\n")
    monkeypatch.setattr(exchange, "PGPOOL_CONF", str(pool))
    monkeypatch.setattr(exchange, "PG_CONFS", (str(auto),))
    monkeypatch.setattr(exchange, "PGPASS", str(pgpass))
    monkeypatch.setattr(exchange, "METAINF", str(meta))
    from dbtls_agent.roles.postgres import accounts
    monkeypatch.setattr(accounts, "platform_webadmin_password", lambda: "from-jcm")
    assert exchange.known_passwords() == {
        "webadmin": "from-jcm", "pgpool": "it's secret", "replicator": "p w", "other": "a:b"}


def test_cli_recipient_seal_and_enable_reader(tmp_path, monkeypatch, capsys):
    """Through the command line: recipient, seal (extra JSON after the key), then the enable reader
    opens the blob and deletes the key."""
    cert_dir = str(tmp_path)
    monkeypatch.setattr(exchange, "known_passwords", lambda: {"webadmin": "node-known"})
    assert cli.main(["secrets", "recipient", "--cert-dir", cert_dir]) == 0
    public = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(public + json.dumps({"app": "given"})))
    assert cli.main(["secrets", "seal"]) == 0
    captured = capsys.readouterr()
    assert "node-known" not in captured.out + captured.err and "given" not in captured.out + captured.err
    monkeypatch.setattr("sys.stdin", io.StringIO(captured.out))
    assert exchange.read_sealed_stdin(cert_dir) == {"webadmin": "node-known", "app": "given"}
    assert not os.path.exists(exchange.key_path(cert_dir))


def test_enable_rejects_both_password_options(capsys):
    assert cli.main(["enable", "--passwords-stdin", "--passwords-sealed"]) == 2
    assert "pass one" in capsys.readouterr().err
