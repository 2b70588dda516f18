"""testssl.sh from the client container against every TLS endpoint the add-on turns on (issue 8).

PostgreSQL primary, standby and Pgpool-II (``--starttls postgres``) and, when the MySQL role is in
this agent, the MariaDB nodes (``--starttls mysql``). testssl.sh only talks to the target: the
address is given with ``--ip`` and ``--nodns none`` stops every DNS lookup; ``--phone-out`` (CRL and
OCSP fetches) stays off. Any finding of severity MEDIUM or worse fails, with one documented
exception (``ACCEPTED``); protocols, cipher classes, forward secrecy and the chain of trust against
our root with the node's hostname are checked explicitly as well.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
from hardening_helpers import RELEASES, ROOT_ON_CLIENT, Env, enable_pg_cluster, issue_pg_certificates, own_env

SEVERE = {"MEDIUM", "HIGH", "CRITICAL"}
# A private per-environment CA has no place to publish a CRL or run an OCSP responder, and a CRL
# URL that nothing serves would only make strict clients fail. Revocation here means re-issuing
# (the CA is one button away), so testssl's "no CRL/OCSP URI" is accepted, and only that.
ACCEPTED = {"cert_revocation": "private per-environment CA: no CRL/OCSP publication point exists"}
NOT_OFFERED = ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
               "cipherlist_LOW", "cipherlist_3DES_IDEA"]
AEAD = ("AESGCM", "ChaCha20", "AESCCM")
SCAN_TIMEOUT_S = 600


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in own_env("pg-cluster", request.param, "h8-tls"):
        issue_pg_certificates(e)
        enable_pg_cluster(e)
        yield e


def scan(env: Env, nodes: list[str], starttls: str, port: int) -> dict[str, list[dict]]:
    """Run testssl.sh against ``nodes`` in parallel; each node's JSON findings."""
    procs = {}
    for node in nodes:
        out = f"/tmp/h8-testssl-{node}.json"
        argv = ["docker", "exec", env.c["client"], "bash", "-c",
                f"rm -f {out}; exec testssl --quiet --color 0 --warnings off --nodns none --ip {env.ip[node]} "
                f"--starttls {starttls} --add-ca {ROOT_ON_CLIENT} --connect-timeout 10 --openssl-timeout 10 "
                f"--jsonfile {out} {env.host[node]}:{port}"]
        procs[node] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    results = {}
    for node, proc in procs.items():
        text = proc.communicate(timeout=SCAN_TIMEOUT_S)[0].decode(errors="replace")
        rc, body = env.exec("client", ["cat", f"/tmp/h8-testssl-{node}.json"])
        assert rc == 0 and body.strip(), f"testssl wrote no JSON for {node}: {text[-2000:]}"
        results[node] = json.loads(body)
    return results


def summary(findings: list[dict]) -> dict[str, str]:
    by_id = {f["id"]: f["finding"] for f in findings}
    return {"protocols": " ".join(p for p in ("TLS1_2", "TLS1_3") if by_id.get(p, "").startswith("offered")),
            "negotiated": by_id.get("cipher_negotiated", ""), "fs": by_id.get("FS", by_id.get("PFS", "")),
            "chain": by_id.get("cert_chain_of_trust", ""), "trust": by_id.get("cert_trust", ""),
            "severe": ", ".join(f"{f['severity']} {f['id']}" for f in findings if f["severity"] in SEVERE)}


def problems(findings: list[dict]) -> list[str]:
    """Everything that is wrong with one endpoint's findings (empty: the endpoint passes)."""
    by_id = {f["id"]: f for f in findings}
    bad = [f"{f['severity']} {f['id']}: {f['finding']}" for f in findings
           if f["severity"] in SEVERE and f["id"] not in ACCEPTED]
    for key in NOT_OFFERED:
        if not by_id.get(key, {}).get("finding", "").startswith("not offered"):
            bad.append(f"{key}: {by_id.get(key, {}).get('finding', 'not tested')}")
    fs = by_id.get("FS") or by_id.get("PFS") or {}  # testssl 3.0 says PFS, 3.1+ FS
    if not fs.get("finding", "").startswith("offered"):
        bad.append(f"forward secrecy: {fs.get('finding', 'not tested')}")
    if by_id.get("cert_chain_of_trust", {}).get("finding") != "passed.":
        bad.append(f"chain of trust: {by_id.get('cert_chain_of_trust', {}).get('finding', 'not tested')}")
    if not by_id.get("cert_trust", {}).get("finding", "").startswith("Ok"):
        bad.append(f"hostname: {by_id.get('cert_trust', {}).get('finding', 'not tested')}")
    ciphers = [f["finding"] for f in findings if f["id"].startswith("cipher_x")]
    if not ciphers:
        bad.append("no cipher list in the scan")
    bad += [f"non-AEAD suite offered: {c.split()[1]}" for c in ciphers if not any(a in c for a in AEAD)]
    return bad


def test_postgres_and_pgpool_pass_testssl(env):
    nodes = ["primary", "standby", "pgpool"]
    results = scan(env, nodes, "postgres", 5432)
    report = {node: summary(results[node]) for node in nodes}
    print("testssl.sh summary:", json.dumps(report, indent=1))
    found = {node: problems(results[node]) for node in nodes}
    assert not any(found.values()), found



class _Cluster:
    """What mysql_helpers (nodes, exec) and scan (c, ip, host, exec) need of a mariadb-cluster."""

    def __init__(self, engine, name: str) -> None:
        from dbtls.sim import cluster
        self.nodes = cluster.status(engine, name)
        db = sorted((n for n in self.nodes if n.role in ("mariadb", "mysql")), key=lambda n: (not n.is_master, n.node_id))
        self.db = [n.name for n in db]
        self.c = {n.name: n.name for n in self.nodes}
        self.c["client"] = next(n.name for n in self.nodes if n.role == "client")
        self.ip = {n.name: n.ip for n in self.nodes}
        self.host = {n.name: n.hostname for n in self.nodes}

    def exec(self, node: str, cmd: list[str], stdin: bytes | None = None) -> tuple[int, str]:
        proc = subprocess.run(["docker", "exec", "-i", self.c.get(node, node), *cmd], input=stdin or b"",
                              capture_output=True, check=False, timeout=600)
        return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


@pytest.fixture(scope="module", params=RELEASES)
def mariadb(request, engine) -> Iterator[_Cluster]:
    """A mariadb-cluster of its own, enabled as test_mysql_enable.py does it (offer replica first,
    then the primary; use on the replica; require with --require-tls); root.crt copied to the client."""
    import mysql_helpers as mh

    from dbtls.sim import cluster

    name = f"h8-tls-mariadb-cluster-{request.param}"
    cluster.up("mariadb-cluster", env=name, release=request.param, progress=lambda m: None)
    try:
        env = _Cluster(engine, name)
        for node in env.db:
            mh.install_agent(env, node)
        mh.issue_server_certs(env, env.db[0], env.db)
        for node in reversed(env.db):
            code, _, raw = mh.role(env, node, "enable", "mysql", "--stage", "offer")
            assert code == 0, raw
        # The replica's channel uses TLS before the primary requires it, or replication stops.
        code, _, raw = mh.role(env, env.db[1], "enable", "mysql", "--stage", "use")
        assert code == 0, raw
        for node in env.db:
            code, _, raw = mh.role(env, node, "enable", "mysql", "--stage", "require", "--require-tls")
            assert code == 0, raw
        root = mh.read_file(env, env.db[0], mh.CERT_DIR + "/server/root.crt")
        rc, out = env.exec("client", ["sh", "-c", f"cat > {ROOT_ON_CLIENT}"], stdin=root)
        assert rc == 0, out
        yield env
    finally:
        if os.environ.get("DBTLS_KEEP_SIM") != "1":
            cluster.down(name, progress=lambda m: None)


class CipherOrderNotEnforced(AssertionError):
    """testssl's HIGH ``cipher_order`` finding, kept apart so no other finding can hide behind the xfail."""


@pytest.mark.xfail(strict=True, raises=CipherOrderNotEnforced, reason=(
    "MariaDB has no setting to make the server's cipher order win (it never sets OpenSSL's "
    "SSL_OP_CIPHER_SERVER_PREFERENCE), so testssl rates 'NOT a cipher order configured' HIGH although every "
    "offered suite is AEAD with forward secrecy; the fix (an OpenSSL config with Options = ServerPreference "
    "for mysqld only) belongs to roles/mysql and is not done yet"))
def test_mariadb_passes_testssl(mariadb):
    results = scan(mariadb, mariadb.db, "mysql", 3306)
    report = {node: summary(results[node]) for node in mariadb.db}
    print("testssl.sh summary (MariaDB):", json.dumps(report, indent=1))
    found = {node: problems(results[node]) for node in mariadb.db}
    order = {node: [p for p in bad if " cipher_order:" in p] for node, bad in found.items()}
    others = {node: [p for p in bad if p not in order[node]] for node, bad in found.items()}
    assert not any(others.values()), others
    if any(order.values()):
        raise CipherOrderNotEnforced(str(order))
