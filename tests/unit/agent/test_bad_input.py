"""The bad-input corpus (tests/corpus/bad-input/cases.json): refuse with one line, or survive.

Each case names a kind of input, the input (inline, or a file anywhere under tests/corpus so the
existing config corpora are reused, not copied) and the expected outcome: ``works``, or
``error: <phrase>`` where the refusal must be a single-line AgentError containing the phrase. On
every refusal the files the agent would have written must be exactly as before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dbtls_agent.certs import ca, node
from dbtls_agent.certs.layout import CertLayout
from dbtls_agent.crypto import DEFAULT_DAYS, get_backend, names
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql import mycnf
from dbtls_agent.roles.pgpool import poolkey, poolpasswd
from dbtls_agent.roles.postgres import conf, hba

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
CASES = json.loads((CORPUS / "bad-input" / "cases.json").read_text(encoding="utf-8"))["cases"]
PARAMS = {"ssl": True, "ssl_cert_file": "/x/server.crt", "ssl_key_file": "/x/server.key",
          "ssl_min_protocol_version": "TLSv1.2"}


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                out[path] = (handle.read(), os.stat(path).st_mode)
    return out


def node_info(hostname: str, addresses: list[str]) -> dict:
    return {"hostname": hostname, "fqdn": hostname + ".env.example.test", "env_domain": "env.example.test",
            "addresses": addresses}


def run_case(case: dict, tmp: Path) -> str:
    """Do what the case says; return a short description of the result (raises AgentError on refusal)."""
    kind, value = case["kind"], case["input"]
    backend = get_backend(None)
    layout = CertLayout(str(tmp / "ssl"))
    if kind in ("san", "hostname", "ipv6-only"):
        host, extra, addresses = "node101-env", [], ["10.0.0.5"]
        if kind == "san":
            extra = [value]
        elif kind == "hostname":
            host = value
        else:
            addresses = [value]
        made = node.make_request(layout, backend, "server", None, extra, "ecdsa-p256", False,
                                       node_info(host, addresses))
        sans = backend.parse_csr(made["csr"])["sans"]
        wanted = names.normalize_san(value) if kind != "hostname" else "DNS:" + value.lower()
        assert wanted in sans, sans
        return " ".join(sans)
    if kind == "csr":
        ca.init_ca(layout, backend, "bad-input CA", "ecdsa-p256", 30, False)
        before = snapshot(tmp)
        try:
            ca.sign_requests(layout, backend, (CORPUS / value).read_bytes(), "auto", dict(DEFAULT_DAYS))
        finally:
            assert snapshot(tmp) == before
        return "signed"
    if kind == "pool_passwd":
        key = poolpasswd.key_from_file_text(os.urandom(24).hex())
        text, users = poolkey.set_entries("postgres:md5abc\n", {"alice": value}, key, None)
        entry = poolpasswd.get_entry(text, "alice")
        assert entry is not None and poolpasswd.decrypt_password(entry.secret, key) == value
        assert poolpasswd.get_entry(text, "postgres").secret == "md5abc" and len(text.splitlines()) == 2
        return entry.secret
    text = (CORPUS / value).read_bytes().decode("utf-8", "surrogateescape")
    if kind == "pgconf":
        new = conf.set_params(text, PARAMS, source=value)
        assert conf.set_params(new, PARAMS, source=value) == new
        assert conf.revert(new, source=value) == text
        for name in ("port", "data_directory", "not_a_real_setting"):
            assert conf.get(new, name, source=value) == conf.get(text, name, source=value)
        return f"{len(new)} bytes"
    if kind == "hba":
        new = hba.enable_hostssl(text, hba.HbaOptions(server_major=15), source=value)
        assert hba.enable_hostssl(new, hba.HbaOptions(server_major=15), source=value) == new
        assert not hba.plaintext_remote_rules(new, source=value)
        return f"{len(hba.rules(new, source=value))} rules"
    if kind == "mycnf":
        new = mycnf.ensure_includedir(text)
        assert mycnf.ensure_includedir(new) == new and mycnf.get_option(new, "mysqld", "port") == "3307"
        return f"{len(new.splitlines())} lines"
    raise AssertionError("unknown case kind " + kind)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input(case, tmp_path):
    expect = case["expect"]
    before = snapshot(tmp_path)
    if expect == "works":
        run_case(case, tmp_path)
        return
    assert expect.startswith("error: ")
    with pytest.raises(AgentError) as caught:
        run_case(case, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and expect[len("error: "):] in message, message
    if case["kind"] != "csr":  # csr cases set up a CA first and check their own snapshot
        assert snapshot(tmp_path) == before


def test_corpus_size_and_coverage():
    kinds = {c["kind"] for c in CASES}
    assert {"san", "hostname", "ipv6-only", "csr", "pgconf", "hba", "mycnf", "pool_passwd"} <= kinds
    assert len(CASES) >= 30
