"""The simulated PostgreSQL platform: real PostgreSQL and Pgpool-II servers, real psql clients.

Plaintext here: these tests prove the simulated platform is what the add-on will meet (md5
passwords, the platform's host rules, streaming replication, Pgpool in front).
"""

import json
import subprocess
import sys

EXPECTED = {"bullseye": ("13", "4.1"), "bookworm": ("15", "4.3"), "trixie": ("17", "4.6")}


def psql(env, host, sql, password=None, user="webadmin", extra=""):
    pw = env.secrets["WEBADMIN_PASSWORD"] if password is None else password
    return env.exec("client", ["psql", f"host={host} user={user} dbname=postgres connect_timeout=10 {extra}",
                               "-qAtc", sql], env={"PGPASSWORD": pw})


def test_status_json_shows_three_healthy_nodes_and_the_client(pg_cluster):
    out = subprocess.run([sys.executable, "-m", "dbtls.cli", "sim", "status", "--env", pg_cluster.name,
                          "--json"], capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    roles = sorted((r["role"], r["group"]) for r in rows)
    assert roles == [("client", "client"), ("pgpool", "pgpool"), ("postgres", "sqldb"), ("postgres", "sqldb")]
    assert all(r["service_up"] for r in rows)
    assert all(r["hostname"].startswith(f"node{r['node_id']}-{pg_cluster.name}.") for r in rows)
    assert len({r["ip"] for r in rows}) == 4


def test_standby_streams_from_the_primary(pg_cluster):
    standby = pg_cluster.node("postgres", 1)
    code, out = psql(pg_cluster, pg_cluster.node("postgres").hostname,
                     "SELECT client_addr, state FROM pg_stat_replication")
    assert code == 0, out
    assert f"{standby.ip}|streaming" in out
    code, out = psql(pg_cluster, standby.hostname, "SELECT pg_is_in_recovery()")
    assert (code, out.strip()) == (0, "t")


def test_versions_match_the_release(pg_cluster):
    pg_major, pgpool_version = EXPECTED[pg_cluster.release]
    code, out = psql(pg_cluster, "node101", "SHOW server_version_num")
    assert code == 0 and out.strip().startswith(pg_major), out
    code, out = pg_cluster.exec("pgpool", ["pgpool", "--version"])
    assert f"version {pgpool_version}" in out, out


def test_webadmin_is_md5_and_the_platform_rules_are_in_place(pg_cluster):
    code, out = psql(pg_cluster, "node101", "SELECT substr(rolpassword, 1, 3) FROM pg_authid WHERE rolname = 'webadmin'")
    assert (code, out.strip()) == (0, "md5")
    code, out = pg_cluster.exec(pg_cluster.node("postgres").name,
                                ["cat", "/var/lib/pgsql/data/pg_hba.conf"])
    rules = [" ".join(line.split()) for line in out.splitlines() if line and not line.startswith("#")]
    assert "host all all 0.0.0.0/0 md5" in rules
    assert "host replication all 0.0.0.0/0 md5" in rules


def test_query_through_pgpool_with_md5_password(pg_cluster):
    pgpool = pg_cluster.node("pgpool")
    code, out = psql(pg_cluster, pgpool.hostname, "SELECT current_user")
    assert (code, out.strip()) == (0, "webadmin"), out
    code, out = psql(pg_cluster, pgpool.hostname, "SELECT 1", password="not-the-password")
    assert code != 0 and "authentication failed" in out


def test_platform_shims(pg_cluster):
    primary = pg_cluster.node("postgres").name
    code, out = pg_cluster.exec(primary, ["jcm", "getPswd"])
    assert (code, out.strip()) == (0, pg_cluster.secrets["WEBADMIN_PASSWORD"])
    code, out = pg_cluster.exec(primary, ["cat", "/etc/jelastic/metainf.conf", "/.jelenv"])
    assert "COMPUTE_TYPE=postgres" in out and "MASTER_ID=101" in out
    assert pg_cluster.exec(primary, ["jem", "service", "reload"])[0] == 0
    assert pg_cluster.exec(primary, ["jem", "service", "status"])[0] == 0
    code, out = pg_cluster.exec(primary, ["jem", "service", "explode"])
    assert code != 0 and "unknown action" in out
