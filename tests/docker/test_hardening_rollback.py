"""Changes the server rejects are rolled back, and a disable that would strand Pgpool is refused.

- A server.key that does not match server.crt on the Pgpool node: Pgpool starts without TLS on bad
  files, so ``enable --role pgpool`` fails its handshake check, restores every file it wrote (SHA-256
  equal to before, the pgpool key file included), restarts Pgpool on the original files and exits 2
  with Pgpool's own message on one line. (PostgreSQL's key mismatch: test_pg_enable_edges.py;
  MariaDB's server that cannot start: test_mysql_enable.py.)
- ``disable --role pgpool`` while the PostgreSQL backends still require TLS (``hostssl`` only) would
  make Pgpool's plaintext health checks fail and detach them: the agent refuses before changing
  anything; in the documented order (servers first, then Pgpool) every backend stays up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from hardening_helpers import (
    POOL_FILES,
    enable_pg_cluster,
    issue_pg_certificates,
    psql_ok,
    served_fingerprint,
)
from harness import CERT_DIR, RELEASES, Env, sim_env, wait_for

PGPOOL_KEY = "/var/lib/pgsql/.pgpoolkey"
POOL_STATE = POOL_FILES + [PGPOOL_KEY]


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in sim_env("pg-cluster", request.param, "hd-rb"):
        issue_pg_certificates(e)
        for node, role in (("primary", "postgres"), ("standby", "postgres"), ("pgpool", "pgpool")):
            e.agent_json(node, "disable", "--role", role, "--force")  # a kept environment may be enabled
        yield e


def one_line_error(proc, needle: str) -> str:
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2, (proc.returncode, err, proc.stdout.decode())
    assert len(err.splitlines()) == 1 and err.startswith("dbtls-agent: error: "), err
    assert needle in err, err
    return err


def pool_nodes_up(env: Env) -> bool:
    """Every backend Pgpool knows is 'up' (asked through Pgpool in plaintext, from the client)."""
    conninfo = f"host={env.host['pgpool']} user=webadmin dbname=postgres sslmode=disable connect_timeout=5"
    rc, out = env.exec("client", ["psql", "-XAtq", "-F", "|", "-d", conninfo, "-c", "SHOW pool_nodes"],
                       env={"PGPASSWORD": env.pw["webadmin"]})
    rows = [line.split("|") for line in out.splitlines() if line.count("|") > 4]
    return rc == 0 and len(rows) == 2 and all(r[3] == "up" for r in rows)


def test_pgpool_key_mismatch_is_rolled_back(env):
    before = env.sha("pgpool", POOL_STATE)
    wait_for(lambda: psql_ok(env, "pgpool", "disable"), 60, "plaintext through Pgpool before the run")
    key = f"{CERT_DIR}/server/server.key"
    rc, good = env.exec("pgpool", ["cat", key])
    assert rc == 0 and "PRIVATE KEY" in good
    rc, other = env.exec("pgpool", ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
    assert rc == 0 and "PRIVATE KEY" in other
    swap = f"cat > {key}.new && chown postgres: {key}.new && chmod 600 {key}.new && mv {key}.new {key}"
    assert env.exec("pgpool", ["sh", "-c", swap], stdin=other.encode())[0] == 0
    try:
        proc = env.agent("pgpool", "enable", "--role", "pgpool", "--passwords-stdin", stdin=_pw(env))
        err = one_line_error(proc, "TLS check through Pgpool failed")
        assert "pgpool log:" in err and "private key" in err, err  # Pgpool's own words
        print("pgpool key mismatch ->", err)
        assert env.sha("pgpool", POOL_STATE) == before, "files not restored byte for byte"
        rc, out = env.exec("pgpool", ["pgrep", "-x", "pgpool"])
        assert rc == 0, "Pgpool is not running after the rollback"
        wait_for(lambda: psql_ok(env, "pgpool", "disable"), 60, "plaintext through Pgpool after the rollback")
        assert served_fingerprint(env, "pgpool") == ""  # back on the original files: no TLS
    finally:
        assert env.exec("pgpool", ["sh", "-c", swap], stdin=good.encode())[0] == 0


def test_disable_pgpool_while_backends_require_tls_is_refused(env):
    enable_pg_cluster(env)
    before = env.sha("pgpool", POOL_STATE)
    served = served_fingerprint(env, "pgpool")
    assert served
    proc = env.agent("pgpool", "disable", "--role", "pgpool")
    err = one_line_error(proc, "disable the PostgreSQL nodes first")
    print("disable pgpool first ->", err)
    assert env.sha("pgpool", POOL_STATE) == before
    assert served_fingerprint(env, "pgpool") == served
    assert psql_ok(env, "pgpool")
    # The documented order works and keeps every backend attached.
    for node, role in (("primary", "postgres"), ("standby", "postgres"), ("pgpool", "pgpool")):
        env.agent_json(node, "disable", "--role", role)
    wait_for(lambda: psql_ok(env, "pgpool", "disable"), 60, "plaintext through Pgpool after disable")
    wait_for(lambda: pool_nodes_up(env), 30, "both backends up in SHOW pool_nodes")
    time.sleep(12)  # two health-check periods (health_check_period = 5): still attached
    assert pool_nodes_up(env) and psql_ok(env, "pgpool", "disable")


def _pw(env: Env) -> bytes:
    return json.dumps(env.pw).encode()
