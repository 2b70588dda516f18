"""testssl.sh from the client container against every TLS endpoint the add-on turns on.

PostgreSQL primary, standby and Pgpool-II (``--starttls postgres``) and, when the MySQL role is in
this agent, the MariaDB nodes (``--starttls mysql``). testssl.sh only talks to the target: the
address is given with ``--ip`` and ``--nodns none`` stops every DNS lookup; ``--phone-out`` (CRL and
OCSP fetches) stays off. Any finding of severity MEDIUM or worse fails, with one documented
exception (``ACCEPTED``); protocols, cipher classes, forward secrecy and the chain of trust against
our root with the node's hostname are checked explicitly as well. Works with the testssl.sh of
bookworm (3.0.8) and of trixie (3.2, whose JSON ids differ). Runs on every release the README
names: on bullseye the servers under test are bullseye's (PostgreSQL 13, Pgpool-II 4.1, MariaDB
10.5 on OpenSSL 1.1.1), but the scan runs from the bookworm client image on the environment's
network, because bullseye's testssl.sh 3.0.4 misreads STARTTLS services (it reported TLS 1.2 "not
offered" and no forward secrecy where ``openssl s_client -starttls`` negotiates ECDHE over TLS 1.2).

Client-initiated renegotiation must be refused everywhere: OpenSSL before 3.0 allows it unless the
server says no, which PostgreSQL does and MariaDB and Pgpool-II do not (the agent gives both their
own OpenSSL configuration with ``NoRenegotiation``: mysqlcipherorder, pgpoolopenssl).

MariaDB never sets OpenSSL's server-preference option, so testssl 3.0 rated its cipher order HIGH;
the agent now gives mysqld its own OpenSSL configuration (mysqlcipherorder), and the MariaDB test
checks that the server's order wins and that real ``mariadb --ssl-verify-server-cert`` clients still
connect with TLS 1.2 and 1.3.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator

import pytest
from hardening_helpers import ROOT_ON_CLIENT, enable_pg_cluster, issue_pg_certificates
from harness import RELEASES, Env, docker_exec, exec_argv, sim_env

from support import require

SEVERE = {"MEDIUM", "HIGH", "CRITICAL"}
# A private per-environment CA has no place to publish a CRL or run an OCSP responder, and a CRL
# URL that nothing serves would only make strict clients fail. Revocation here means re-issuing
# (the CA is one button away), so testssl's "no CRL/OCSP URI" is accepted, and only that.
ACCEPTED = {"cert_revocation": "private per-environment CA: no CRL/OCSP publication point exists"}
# testssl 3.2 rates a server certificate living longer than 398 days MEDIUM: the CA/Browser Forum
# limit for publicly trusted certificates. Ours chain to a root the user installs; for such roots the
# strictest client rule is Apple's 825 days, and no database client checks lifetimes at all. The add-on
# does not renew by itself, so 825 days (one press of Re-issue every two years) is the default on
# purpose. Accepted only while the finding names a lifetime of at most 825 days.
MAX_LIFETIME_DAYS = 825


def lifetime_accepted(finding: dict) -> bool:
    """testssl's ``cert_extlifeSpan`` finding ("825 > 398 days" in 3.2) within our default limit."""
    days = [int(w) for w in finding.get("finding", "").replace(">", " ").replace("=", " ").split() if w.isdigit()]
    return finding.get("id", "").startswith("cert_extlifeSpan") and bool(days) and max(days) <= MAX_LIFETIME_DAYS


# testssl 3.2 caps the grade of every STARTTLS service at T ("use implicit TLS, RFC 8314"). The
# MySQL protocol has no implicit-TLS port, and clients here ask for TLS and verify the server, so a
# T whose every cap reason is STARTTLS is not a finding about our configuration; any other cap is.
STARTTLS_CAP = "STARTTLS is prone to MITM downgrade attacks"
NOT_OFFERED = ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
               "cipherlist_LOW", "cipherlist_3DES_IDEA"]
AEAD = ("AESGCM", "ChaCha20", "AESCCM")
SCAN_TIMEOUT_S = 600


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in sim_env("pg-cluster", request.param, "hd-tls"):
        issue_pg_certificates(e)
        enable_pg_cluster(e)
        yield e


# Releases whose own testssl.sh cannot scan STARTTLS services, and the client image that scans them.
SCANNER_RELEASE = {"bullseye": "bookworm"}


@contextlib.contextmanager
def scanner(env) -> Iterator[str]:
    """The container that runs testssl.sh: the environment's client, or on releases listed in
    SCANNER_RELEASE a client of that release started on the environment's network (with root.crt)."""
    release = SCANNER_RELEASE.get(env.release)
    if release is None:
        yield env.c["client"]
        return
    image = f"dbtls/client:{release}"
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    require(found.returncode == 0, f"{image} is needed to scan {env.release} nodes (make images)")
    network = subprocess.run(["docker", "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}",
                              env.c["client"]], capture_output=True, check=True, text=True).stdout.strip()
    name = f"{env.c['client']}-scanner"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", network, "--entrypoint", "sleep",
                    image, "infinity"], capture_output=True, check=True)
    try:
        root = docker_exec(env.c["client"], ["cat", ROOT_ON_CLIENT], check=True).stdout
        docker_exec(name, ["sh", "-c", f"cat > {ROOT_ON_CLIENT}"], stdin=root, check=True)
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def scan(env: Env, nodes: list[str], starttls: str, port: int) -> dict[str, list[dict]]:
    """Run testssl.sh against ``nodes`` in parallel; each node's JSON findings."""
    with scanner(env) as container:
        return _scan(env, container, nodes, starttls, port)


def _scan(env: Env, container: str, nodes: list[str], starttls: str, port: int) -> dict[str, list[dict]]:
    procs = {}
    for node in nodes:
        out = f"/tmp/testssl-{node}.json"
        argv = exec_argv(container, ["bash", "-c",
                f"rm -f {out}; exec testssl --quiet --color 0 --warnings off --nodns none --ip {env.ip[node]} "
                f"--starttls {starttls} --add-ca {ROOT_ON_CLIENT} --connect-timeout 10 --openssl-timeout 10 "
                f"--jsonfile {out} {env.host[node]}:{port}"], stdin=False)
        procs[node] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    results = {}
    for node, proc in procs.items():
        text = proc.communicate(timeout=SCAN_TIMEOUT_S)[0].decode(errors="replace")
        proc = docker_exec(container, ["cat", f"/tmp/testssl-{node}.json"])
        body = proc.stdout.decode(errors="replace")
        assert proc.returncode == 0 and body.strip(), f"testssl wrote no JSON for {node}: {text[-2000:]}"
        results[node] = json.loads(body)
    return results


def summary(findings: list[dict]) -> dict[str, str]:
    by_id = {f["id"]: f["finding"] for f in findings}
    return {"protocols": " ".join(p for p in ("TLS1_2", "TLS1_3") if by_id.get(p, "").startswith("offered")),
            "cipher_order": by_id.get("cipher_order", ""), "suites": " ".join(c.split()[1] for c in suites(findings)),
            "fs": by_id.get("FS", by_id.get("PFS", "")),
            "chain": by_id.get("cert_chain_of_trust", ""), "trust": by_id.get("cert_trust", ""),
            "severe": ", ".join(f"{f['severity']} {f['id']}" for f in findings if f["severity"] in SEVERE)}


def suites(findings: list[dict]) -> list[str]:
    """The offered suites' lines (testssl 3.0: ``cipher_x..``; 3.2: ``cipher-tls1_2_x..``), deduplicated."""
    lines = [f["finding"] for f in findings if f["id"].startswith(("cipher_x", "cipher-tls"))]
    return list(dict.fromkeys(line.split(None, 1)[1] if line.startswith("TLSv") else line for line in lines))


def starttls_cap_only(findings: list[dict]) -> bool:
    caps = [f["finding"] for f in findings if f["id"].startswith("grade_cap_reason")]
    return bool(caps) and all(STARTTLS_CAP in c for c in caps)


def problems(findings: list[dict]) -> list[str]:
    """Everything that is wrong with one endpoint's findings (empty: the endpoint passes)."""
    by_id = {f["id"]: f for f in findings}
    grade_t = by_id.get("overall_grade", {}).get("finding") == "T" and starttls_cap_only(findings)
    bad = [f"{f['severity']} {f['id']}: {f['finding']}" for f in findings
           if f["severity"] in SEVERE and f["id"] not in ACCEPTED and not (f["id"] == "overall_grade" and grade_t)
           and not lifetime_accepted(f)]
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
    renego = by_id.get("secure_client_renego", {}).get("finding", "not tested")
    if "VULNERABLE" in renego or "not vulnerable" not in renego:  # also "likely not vulnerable (timed out)"
        bad.append(f"client-initiated renegotiation: {renego}")
    ciphers = suites(findings)
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



class _Cluster(Env):
    """A mariadb-cluster as mysql_helpers and scan use it: ``db`` (primary first), every node also
    under its container name in ``c``, ``ip`` and ``host``, and the root password."""

    def refresh(self) -> None:
        super().refresh()
        db = sorted((n for n in self.nodes if n.role in ("mariadb", "mysql")), key=lambda n: (not n.is_master, n.node_id))
        self.db = [n.name for n in db]
        self.c.update({n.name: n.name for n in self.nodes})
        self.ip.update({n.name: n.ip for n in self.nodes})
        self.host.update({n.name: n.hostname for n in self.nodes})
        self.root_password = self.secrets["MYSQL_ROOT_PASSWORD"]


@pytest.fixture(scope="module", params=RELEASES)
def mariadb(request, engine) -> Iterator[_Cluster]:
    """A mariadb-cluster of its own, enabled as test_mysql_enable.py does it (offer replica first,
    then the primary; use on the replica; require with --require-tls); root.crt copied to the client."""
    import mysql_helpers as mh

    for env in sim_env("mariadb-cluster", request.param, "htm", _Cluster):
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


def mariadb_session_tls(env: _Cluster, node: str, version: str) -> list[str]:
    """[Ssl_cipher, Ssl_version] of a ``mariadb --ssl-verify-server-cert`` session limited to ``version``."""
    query = ("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
             "WHERE VARIABLE_NAME IN ('SSL_CIPHER', 'SSL_VERSION') ORDER BY VARIABLE_NAME")
    proc = docker_exec(env.c["client"], ["mariadb", f"--host={env.host[node]}", "--user=root",
                                         "--ssl-verify-server-cert", f"--ssl-ca={ROOT_ON_CLIENT}",
                                         f"--tls-version={version}", "--connect-timeout=10", "--batch",
                                         "--skip-column-names", "-e", query],
                       env={"MYSQL_PWD": env.root_password}, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode().split()


def test_mariadb_passes_testssl(mariadb):
    results = scan(mariadb, mariadb.db, "mysql", 3306)
    report = {node: summary(results[node]) for node in mariadb.db}
    print("testssl.sh summary (MariaDB):", json.dumps(report, indent=1))
    found = {node: problems(results[node]) for node in mariadb.db}
    assert not any(found.values()), found
    # The server's order wins (testssl 3.0 rated its absence HIGH; 3.2 rates it by the suites offered).
    order = {node: next((f["severity"], f["finding"]) for f in results[node] if f["id"] == "cipher_order")
             for node in mariadb.db}
    assert all(sev == "OK" and finding.startswith("server") for sev, finding in order.values()), order
    # Real clients that verify the server still connect, with each protocol we allow.
    for node in mariadb.db:
        assert mariadb_session_tls(mariadb, node, "TLSv1.3")[1] == "TLSv1.3"
        cipher, version = mariadb_session_tls(mariadb, node, "TLSv1.2")
        assert version == "TLSv1.2" and "GCM" in cipher, (node, cipher, version)
