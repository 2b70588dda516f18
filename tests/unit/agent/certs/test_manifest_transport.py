"""Certificates, options and sealed passwords as the manifest moves them: base64 made by the
platform, parsed as data on the receiving node, and the CA's own policy on what it signs."""

import base64
import json

import pytest
from test_certs import FACTS, Agent

from dbtls_agent import options, payload
from dbtls_agent.certs import capolicy, nodeinfo
from dbtls_agent.errors import AgentError


def b64(data) -> str:
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def requests_line(*items) -> str:
    """The manifest's request list (``<id>:<base64 of the node's output> ...``), base64 again."""
    return b64(" ".join(f"{node_id}:{b64(out)}" for node_id, out in items))


@pytest.fixture(params=["cryptography", "openssl"])
def agent(request, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DBTLS_CRYPTO_BACKEND", request.param)
    monkeypatch.setenv("COMPUTE_TYPE", "postgres")
    monkeypatch.setattr(nodeinfo, "collect", lambda *a, **k: dict(FACTS))
    monkeypatch.setattr(nodeinfo, "METAINF_PATH", str(tmp_path / "no-metainf"))
    return Agent(tmp_path / "SSL-TLS", capsys, monkeypatch)


NODES = b64("101=10.1.2.3 102=10.1.2.4")


def sign(agent, requests, nodes=NODES, layer="sqldb", expect=0):
    return agent.run("ca", "sign", "--from-manifest", "--env-domain", "env1.example.com", "--layer", layer,
                     stdin=(requests + "\n" + nodes + "\n").encode(), expect=expect)


def test_round_trip_through_the_manifest(agent):
    agent.run("ca", "init", "--env-name", "env1")
    out = agent.run("csr", "--bundle")
    assert out.count("\n") == 1 and set(json.loads(out)) == {"server", "client"}
    signed = sign(agent, requests_line((101, out)))
    assert signed.count("\n") == 1
    bundle = json.loads(signed)
    server = next(c for c in bundle["certificates"] if c["kind"] == "server")
    # fd00::3 is not in the platform's list for node 101: left out, not certified.
    assert server["sans"] == ["DNS:node101", "DNS:node101-env1.example.com", "DNS:env1.example.com", "IP:10.1.2.3"]
    assert server["dropped"] == ["IP:fd00::3"]
    installed = json.loads(agent.run("install-certs", "--from-manifest", "--owner", "nobody",
                                     stdin=b64(signed).encode()))
    assert {i["kind"] for i in installed["installed"]} == {"server", "client"}


def test_node_without_request_is_skipped_and_allow_none(agent):
    agent.run("ca", "init", "--env-name", "env1")
    assert agent.run("csr", "--bundle", "--if-installed") == "{}\n"
    signed = sign(agent, requests_line((101, "{}\n")))
    assert json.loads(signed)["certificates"] == []
    out = json.loads(agent.run("install-certs", "--from-manifest", "--allow-none", stdin=b64(signed).encode()))
    assert out["installed"] == []


def test_ca_refuses_a_name_the_node_does_not_own(agent, monkeypatch):
    agent.run("options", "save")  # the state directory exists, so 'ca policy' runs under the node lock
    agent.run("ca", "init", "--env-name", "env1")
    out = agent.run("csr", "--bundle", "--scope", "server", "--san", "db.bank.example")
    err = sign(agent, requests_line((101, out)), expect=2)
    assert "node 101 asks for DNS:db.bank.example" in err and "refusing to sign" in err
    # The installing person's extra names for the layer are allowed.
    agent.run("ca", "policy", "--layer", "sqldb", "--extra-names", "db.bank.example")
    assert json.loads(sign(agent, requests_line((101, out))))["certificates"]


def test_ca_refuses_another_nodes_name(agent, monkeypatch):
    agent.run("ca", "init", "--env-name", "env1")
    out = agent.run("csr", "--bundle", "--scope", "server")
    # Node 102 sends node 101's request (names node101-...): refused.
    err = sign(agent, requests_line((102, out)), expect=2)
    assert "node 102 asks for a server certificate named 'node101'" in err


def test_ca_refuses_client_cn_that_was_not_named(agent):
    agent.run("ca", "init", "--env-name", "env1")
    out = agent.run("csr", "--bundle", "--scope", "client", "--user", "postgres")
    err = sign(agent, requests_line((101, out)), expect=2)
    assert "user 'postgres'" in err and "refusing to sign" in err
    agent.run("ca", "policy", "--client-user", "postgres")
    assert json.loads(sign(agent, requests_line((101, out))))["certificates"][0]["cn"] == "postgres"


def test_client_certificate_only_for_the_database_layer(agent):
    agent.run("ca", "init", "--env-name", "env1")
    out = agent.run("csr", "--bundle", "--scope", "client")
    err = sign(agent, requests_line((101, out)), layer="pgpool", expect=2)
    assert "only the database layer" in err


def test_request_from_a_node_the_platform_did_not_list(agent):
    agent.run("ca", "init", "--env-name", "env1")
    out = agent.run("csr", "--bundle")
    err = sign(agent, requests_line((999, out)), expect=2)
    assert "node 999" in err and "not in the platform's node list" in err


@pytest.mark.parametrize("line", ["'; rm -rf / #", "101:not base64!", "abc:", "101:QUJD 101:QUJD"])
def test_garbage_lists_are_refused(agent, line):
    agent.run("ca", "init", "--env-name", "env1")
    err = sign(agent, b64(line), expect=2)
    assert "request list" in err


def test_garbage_request_content_is_refused(agent):
    agent.run("ca", "init", "--env-name", "env1")
    err = sign(agent, requests_line((101, "#!/bin/sh\nrm -rf /\n")), expect=2)
    assert "node 101 sent a request that is not the JSON" in err


def test_install_refuses_non_base64_and_non_bundle(agent):
    assert "not base64" in agent.run("install-certs", "--from-manifest", stdin=b"$(reboot)", expect=2)
    assert "not the JSON" in agent.run("install-certs", "--from-manifest", stdin=b64("hello").encode(), expect=2)


def test_payload_decode_list():
    assert payload.decode_list("1:QUJD 22:") == [(1, b"ABC"), (22, b"")]
    for bad in ("x:QUJD", "1:QUJ", "1:QU=D", "1"):
        with pytest.raises(AgentError):
            payload.decode_list(bad)


def test_options_validate_and_apply():
    values = options.validate({"key_type": "ecdsa-p256", "min_tls": "TLSv1.3", "require_tls": "true",
                               "extra_names": "db.example.com, 10.0.0.9;x.example.com", "md5_compat": ""})
    assert values["require_tls"] is True and values["md5_compat"] is False
    assert values["extra_names"] == ["db.example.com", "x.example.com", "10.0.0.9"]
    for bad in ({"key_type": "rsa1024"}, {"min_tls": "TLSv1.0"}, {"require_tls": "maybe"},
                {"extra_names": "bad name!"}, {"nope": "1"}):
        with pytest.raises(AgentError):
            options.validate(bad)


def test_options_save_from_the_manifest_shape(agent):
    agent.run("options", "save", "--key-type", "rsa3072", "--extra-names", "db.example.com", "--require-tls", "true")
    saved = json.loads(agent.run("options", "show"))
    assert saved["key_type"] == "rsa3072" and saved["require_tls"] is True
    # ca init --options takes the key type from there.
    agent.run("ca", "init", "--options", "--env-name", "env1")
    report = json.loads(agent.run("inspect"))
    ca = next(c for c in report["certificates"] if c["role"] == "ca")
    assert "3072" in json.dumps(ca)


def test_capolicy_names():
    assert capolicy.node_dns_names(7, "env.example.com") == [
        "node7", "node7-env", "node7-env.example", "node7-env.example.com", "env.example.com"]
    assert capolicy.admin_user("mariadb") == "root" and capolicy.admin_user("pgpool2") is None
    with pytest.raises(AgentError):
        capolicy.parse_nodes("7=not-an-ip")
