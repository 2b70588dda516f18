"""CA rotation without a moment of distrust: trust bundle, ``install-certs --roots-only``, and
``ca sign --with-previous`` (both crypto backends, in-process)."""

import json
import os
import sys
from pathlib import Path

import pytest

from dbtls_agent.crypto import get_backend
from dbtls_agent.crypto.der import pem_blocks, to_pem
from dbtls_agent.errors import AgentError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_certs import agent  # noqa: E402,F401  (fixture)


def certs_in(pem_text):
    return [to_pem(label, body).decode() for label, body in pem_blocks(pem_text.encode()) if label == "CERTIFICATE"]


def read(node, *parts):
    with open(os.path.join(node.cert_dir, *parts)) as handle:
        return handle.read()


def reissue(node, *sign_args):
    server = node.run("csr", "--kind", "server", "--rotate")
    client = node.run("csr", "--kind", "client", "--rotate")
    bundle = node.run("ca", "sign", "--format", "pem", *sign_args, stdin=(server + client).encode())
    return bundle, json.loads(node.run("install-certs", "--owner", "nobody", stdin=bundle.encode()))


def test_rotation_trusts_both_roots_until_the_next_run(agent):  # noqa: F811
    agent.issue_all()
    old_root = read(agent, "server", "root.crt")
    assert certs_in(agent.run("ca", "roots", "--with-previous")) == [old_root]  # no rotation yet
    new_root = agent.run("ca", "init", "--rotate", "--env-name", "env1")
    both = agent.run("ca", "roots", "--with-previous")
    assert certs_in(both) == [new_root, old_root]
    assert certs_in(agent.run("ca", "roots")) == [new_root]

    # Step 1: every node trusts both roots; its installed (old-CA) certificates stay valid.
    out = json.loads(agent.run("install-certs", "--roots-only", "--owner", "nobody", stdin=both.encode()))
    assert [(i["kind"], i["changed"], i["verified"]) for i in out["installed"]] == [
        ("server", True, True), ("client", True, True)]
    assert certs_in(read(agent, "server", "root.crt")) == [new_root, old_root]
    assert certs_in(read(agent, "client", "root.crt")) == [new_root, old_root]

    # Step 2: the re-issue signs with the new CA and keeps handing out both roots.
    bundle, installed = reissue(agent, "--with-previous")
    assert certs_in(bundle)[-2:] == [new_root, old_root]
    assert certs_in(read(agent, "server", "root.crt")) == [new_root, old_root]
    backend = get_backend()
    server = read(agent, "server", "server.crt").encode()
    backend.verify_chain(server, read(agent, "server", "root.crt").encode())
    with pytest.raises(AgentError):
        backend.verify_chain(server, old_root.encode())
    roots = {c["role"]: c for c in json.loads(agent.run("inspect"))["certificates"]}
    assert roots["server-root"]["sha256"] == backend.parse_cert(new_root.encode())["sha256"]
    assert [r["sha256"] for r in roots["server-root"]["also_trusted"]] == [
        backend.parse_cert(old_root.encode())["sha256"]]

    # The next run drops the previous root.
    reissue(agent)
    assert certs_in(read(agent, "server", "root.crt")) == [new_root]


def test_roots_only_keeps_the_root_of_an_installed_certificate(agent):  # noqa: F811
    """A rotation retried after a half-done one: the bundle no longer holds the root this node's
    certificate came from; that root is kept next to the bundle instead of cutting the node off."""
    agent.issue_all()
    first_root = read(agent, "server", "root.crt")
    agent.run("ca", "init", "--rotate", "--env-name", "env1")
    agent.run("ca", "init", "--rotate", "--env-name", "env1")  # the interim CA never signed anything
    both = agent.run("ca", "roots", "--with-previous")
    assert first_root not in certs_in(both)
    out = json.loads(agent.run("install-certs", "--roots-only", "--owner", "nobody", stdin=both.encode()))
    server = next(i for i in out["installed"] if i["kind"] == "server")
    assert server["verified"] and len(server["kept_roots"]) == 1
    assert certs_in(read(agent, "server", "root.crt")) == certs_in(both) + [first_root]


def test_roots_only_refuses_leaf_certificates(agent):  # noqa: F811
    signed, _ = agent.issue_all()
    leaf = signed["certificates"][0]["certificate"]
    assert "CA certificates only" in agent.run("install-certs", "--roots-only", stdin=leaf.encode(), expect=2)


def test_verify_chain_accepts_a_bundle_and_names_the_issuer(agent):  # noqa: F811
    agent.issue_all()
    old_root = read(agent, "server", "root.crt")
    server = read(agent, "server", "server.crt").encode()
    new_root = agent.run("ca", "init", "--rotate", "--env-name", "env1")
    backend = get_backend()
    backend.verify_chain(server, (new_root + old_root).encode())
    backend.verify_chain(server, (old_root + new_root).encode())
    with pytest.raises(AgentError):
        backend.verify_chain(server, (new_root + new_root).encode())
