"""The Renew due certificates button (action ``renew``) on simulated pg-cluster and mariadb-cluster.

A standby's (replica's) server certificate is replaced, the manifest's way (``csr --bundle``, ``ca
sign --from-manifest``, ``install-certs --from-manifest``), by one that lives 10 days, so ``certs
due --within-days 30`` calls it due. Pressing the button must renew the layer's server
certificates through the re-issue steps, with zero failed queries from fresh connections through
Pgpool-II and to every PostgreSQL node; with nothing due it must change nothing. Tests run in file
order and share one environment per family.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import (
    CERT_DIR,
    NODE_AGENT,
    RELEASES,
    Sim,
    due_report,
    exec_argv,
    shorten_server_certificate,
    sim_env,
    wait_for,
)

from dbtls.addon.project import build_outputs, repo_root, write_outputs

AGENT = NODE_AGENT
SHORT_DAYS = 10
LOOP_SRC = Path(__file__).with_name("pg_client_loop.py")
LOOP = "/tmp/rn-loop.py"
ROOT_CRT = "/tmp/rn-root.crt"
BUTTON = "Renew due certificates"


def serial(env, node: str, path: str = f"{CERT_DIR}/server/server.crt") -> str:
    code, out = env.exec(node, ["openssl", "x509", "-noout", "-serial", "-enddate", "-in", path])
    assert code == 0, out
    return out.strip()


def serials(env, roles: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for n in env.nodes:
        if n.role in roles:
            out[n.name] = serial(env, n.name)
            code, text = env.exec(n.name, ["bash", "-c", f"ls {CERT_DIR}/client/*.crt 2>/dev/null | sort"])
            for path in text.split():
                out[f"{n.name}:{path}"] = serial(env, n.name, path)
    return out


def press(sim: Sim, caption: str, settings: dict | None = None, layer: str | None = None):
    started = time.monotonic()
    result = sim.session(lambda s: s.press(caption, settings or {}, layer))
    print(f"{caption} ({layer or 'sqldb'}): {time.monotonic() - started:.1f} s")
    assert result.ok and result.message_type == "success", (result.error, result.message)
    return result


# --- PostgreSQL + Pgpool-II ----------------------------------------------------------------------

def give_client_the_root(env) -> None:
    """The client container verifies servers against the environment's CA root (ROOT_CRT)."""
    code, out = env.exec("primary", ["cat", f"{CERT_DIR}/server/root.crt"])
    assert code == 0, out
    code, out2 = env.exec("client", ["bash", "-c", f"cat > {ROOT_CRT}"], stdin=out.encode())
    assert code == 0, out2


@pytest.fixture(scope="module", params=RELEASES)
def pg(request, engine) -> Iterator[Sim]:
    write_outputs(repo_root(), build_outputs(repo_root()))  # the manifest must pin the current agent
    for env in sim_env("pg-cluster", request.param, "rw"):
        sim = Sim(env)
        results = sim.session(lambda s: s.install({}))
        assert [g for g, _ in results] == ["sqldb", "pgpool"], results
        assert all(r.ok for _, r in results), [(g, r.error) for g, r in results]
        give_client_the_root(env)
        yield sim


def test_pg_status_shows_the_next_renewal(pg):
    result = press(pg, "Certificate status")
    message = result.message or ""
    rows = [line for line in message.split("Renewal", 1)[1].splitlines() if line.startswith("- node")]
    databases = [n for n in pg.env.nodes if n.role == "postgres"]
    assert len(rows) == len(databases), message
    # A client certificate (365 days) ends before a server certificate (825): it comes next.
    assert all("next renewal 20" in r and "by re-issue certificates)" in r for r in rows), message


def test_pg_nothing_due_changes_nothing(pg):
    env = pg.env
    before = serials(env, ("postgres", "pgpool"))
    result = press(pg, BUTTON)
    assert "nothing is due within 30 days" in (result.message or ""), result.message
    assert serials(env, ("postgres", "pgpool")) == before


class Loops:
    """pg_client_loop.py in the client container, a fresh connection per query, to each target."""

    def __init__(self, env, hosts: dict[str, str]) -> None:
        self.env = env
        subprocess.run(["docker", "cp", str(LOOP_SRC), f"{env.c['client']}:{LOOP}"], check=True, capture_output=True)
        self.procs = {}
        for tag, host in hosts.items():
            stop, ready = f"/tmp/rn-{tag}.stop", f"/tmp/rn-{tag}.ready"
            env.exec("client", ["rm", "-f", stop, ready])
            conninfo = (f"host={host} user=webadmin dbname=postgres sslmode=verify-full sslrootcert={ROOT_CRT} "
                        "connect_timeout=5")
            argv = exec_argv(env.c["client"], ["python3", LOOP, "--mode", "fresh", "--conninfo", conninfo,
                                               "--interval", "0.02", "--deadline", "900", "--stop-file", stop,
                                               "--ready-file", ready],
                             env={"PGPASSWORD": env.pw["webadmin"]}, stdin=False)
            self.procs[tag] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for tag, proc in self.procs.items():
            ready = f"/tmp/rn-{tag}.ready"
            wait_for(lambda p=proc, r=ready: p.poll() is None and env.exec("client", ["test", "-e", r])[0] == 0,
                     60, f"the first answer from {tag}")

    def stop(self) -> dict[str, dict]:
        reports = {}
        for tag, proc in self.procs.items():
            self.env.exec("client", ["touch", f"/tmp/rn-{tag}.stop"])
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()
            reports[tag] = json.loads(out.decode().strip().splitlines()[-1])
        return reports


def test_pg_due_server_certificate_is_renewed_without_failed_queries(pg):
    env = pg.env
    standby = env.c["standby"]
    shorten_server_certificate(env, standby, SHORT_DAYS)
    before = serials(env, ("postgres", "pgpool"))
    hosts = {"pgpool": env.host["pgpool"], "primary": env.host["primary"], "standby": env.host["standby"]}
    loops = Loops(env, hosts)
    started = time.monotonic()
    try:
        result = press(pg, BUTTON)
    finally:
        reports = loops.stop()
    took = time.monotonic() - started
    print(f"renewal took {took:.1f} s; fresh connections during it:", json.dumps(
        {t: {k: r[k] for k in ("queries", "failed", "tls_answers", "longest_gap_ms")} for t, r in reports.items()}))
    standby_id = next(n.node_id for n in env.nodes if n.name == standby)
    assert f"server certificates (due on node{standby_id})" in (result.message or ""), result.message
    for tag, report in reports.items():
        assert report["failed"] == 0 and report["queries"] >= 5, (tag, report)
        assert report["tls_answers"] == report["queries"], (tag, report)
    after = serials(env, ("postgres", "pgpool"))
    # Server scope for the database layer: every PostgreSQL server certificate is new, the client
    # certificates and Pgpool-II's certificate are untouched.
    for name, value in before.items():
        is_server = ":" not in name and next(n.role for n in env.nodes if n.name == name) == "postgres"
        assert (after[name] != value) == is_server, (name, value, after[name])
    assert not due_report(env, standby)["any_due"]
    # Renewing again finds nothing due.
    again = press(pg, BUTTON)
    assert "nothing is due" in (again.message or ""), again.message
    assert serials(env, ("postgres", "pgpool")) == after


#: Longest outage a client of Pgpool-II may see: its one restart to load a new certificate.
RESTART_MS = 6000


def test_pg_pgpool_layer_renews_its_due_certificate_without_failed_queries_on_the_servers(pg):
    env = pg.env
    result = press(pg, BUTTON, layer="pgpool")
    assert "nothing is due within 30 days" in (result.message or ""), result.message
    shorten_server_certificate(env, env.c["pgpool"], SHORT_DAYS, layer="pgpool")
    before = serials(env, ("postgres", "pgpool"))
    loops = Loops(env, {"pgpool": env.host["pgpool"], "primary": env.host["primary"],
                        "standby": env.host["standby"]})
    try:
        result = press(pg, BUTTON, layer="pgpool")
    finally:
        reports = loops.stop()
    print("pgpool layer renewal; fresh connections during it:", json.dumps(
        {t: {k: r[k] for k in ("queries", "failed", "outages_ms")} for t, r in reports.items()}))
    pgpool_id = next(n.node_id for n in env.nodes if n.name == env.c["pgpool"])
    assert f"server certificates (due on node{pgpool_id})" in (result.message or ""), result.message
    for tag in ("primary", "standby"):
        assert reports[tag]["failed"] == 0 and reports[tag]["queries"] >= 5, (tag, reports[tag])
    # Pgpool-II restarts once to load its certificate, as on a re-issue of its layer.
    assert len(reports["pgpool"]["outages_ms"]) <= 1 and all(
        ms <= RESTART_MS for ms in reports["pgpool"]["outages_ms"]), reports["pgpool"]
    after = serials(env, ("postgres", "pgpool"))
    assert {k for k in before if after[k] != before[k]} == {env.c["pgpool"]}, (before, after)
    assert not due_report(env, "pgpool")["any_due"]


def kit_serial(env, user: str) -> str:
    return serial(env, "primary", f"{CERT_DIR}/kits/{user}/client.crt")


def test_pg_kits_left_behind_by_a_ca_rotation_are_renewed(pg):
    """After *Everything, including a new CA*, a client kit still holds a certificate of the old CA:
    certs due calls it due on the CA node, and the renewal rebuilds it from the new CA."""
    env = pg.env
    press(pg, "Client connection kit", {"dbUser": "webadmin"})
    old_kit = kit_serial(env, "webadmin")
    press(pg, "Re-issue certificates", {"scope": "all"})
    reasons = {c["role"]: c["reason"] for c in due_report(env, "primary")["certificates"] if c["due"]}
    assert reasons == {"kit": "not issued by the current CA"}, reasons
    servers = serials(env, ("postgres", "pgpool"))
    result = press(pg, BUTTON)
    assert "renewing client kits of webadmin." in (result.message or ""), result.message
    assert kit_serial(env, "webadmin") != old_kit
    assert not due_report(env, "primary")["any_due"]
    assert serials(env, ("postgres", "pgpool")) == servers  # nothing else was re-issued
    code, out = env.exec("primary", ["openssl", "verify", "-CAfile", f"{CERT_DIR}/ca/ca.crt",
                                     f"{CERT_DIR}/kits/webadmin/client.crt"])
    assert code == 0, out


# --- MariaDB + ProxySQL --------------------------------------------------------------------------

@pytest.fixture(scope="module", params=RELEASES)
def my(request, engine) -> Iterator[Sim]:
    write_outputs(repo_root(), build_outputs(repo_root()))
    for env in sim_env("mariadb-cluster", request.param, "rw"):
        sim = Sim(env)
        results = sim.session(lambda s: s.install({"requireTls": True}))
        assert all(r.ok for _, r in results), [(g, r.error) for g, r in results]
        give_client_the_root(env)
        yield sim


def tls_login(env, host: str) -> str:
    code, out = env.exec("client", ["mariadb", "--host=" + host, "--user=root", "--connect-timeout=10", "--batch",
                                    "--skip-column-names", "--ssl-verify-server-cert", "--ssl-ca=" + ROOT_CRT,
                                    "-e", "SHOW STATUS LIKE 'Ssl_version'"],
                         env={"MYSQL_PWD": env.secrets["MYSQL_ROOT_PASSWORD"]})
    assert code == 0, (host, out)
    return out.strip()


def test_mariadb_nothing_due_changes_nothing(my):
    env = my.env
    before = serials(env, ("mariadb", "proxysql"))
    result = press(my, BUTTON)
    assert "nothing is due within 30 days" in (result.message or ""), result.message
    assert serials(env, ("mariadb", "proxysql")) == before


def test_mariadb_due_server_certificate_is_renewed(my):
    env = my.env
    replica = env.c["standby"]
    shorten_server_certificate(env, replica, SHORT_DAYS)
    before = serials(env, ("mariadb", "proxysql"))
    press(my, BUTTON)
    after = serials(env, ("mariadb", "proxysql"))
    for n in env.nodes:
        if n.role == "mariadb":
            assert after[n.name] != before[n.name], n.name
            assert "TLSv1" in tls_login(env, n.hostname), n.hostname
            code, out = env.exec(n.name, [AGENT, "status"])
            assert code == 0 and json.loads(out).get("serves_our_certificate") is True, (n.name, out)
        elif n.role == "proxysql":
            assert after[n.name] == before[n.name], n.name
    assert not due_report(env, replica)["any_due"]


def test_mariadb_proxysql_layer_with_nothing_due_changes_nothing(my):
    env = my.env
    before = serials(env, ("mariadb", "proxysql"))
    result = press(my, BUTTON, layer="proxy")
    assert "nothing is due within 30 days" in (result.message or ""), result.message
    assert serials(env, ("mariadb", "proxysql")) == before


def test_mariadb_user_certificates_and_kits_left_behind_by_a_ca_rotation_are_renewed(my):
    """A user-cert user's certificate and kit from the old CA are due after a CA rotation; the
    renewal issues the user's certificate again, then the kit, and the user logs in with it."""
    env = my.env
    user, password = env.secrets["APP_USER"], env.secrets["APP_PASSWORD"]
    press(my, "Require client certificate for a user", {"dbUser": user})
    press(my, "Client connection kit", {"dbUser": user})
    press(my, "Re-issue certificates", {"scope": "all"})
    reasons = {c["role"]: c["reason"] for c in due_report(env, "primary")["certificates"] if c["due"]}
    assert reasons == {"kit": "not issued by the current CA", "user-client": "not issued by the current CA"}, reasons
    result = press(my, BUTTON)
    assert f"renewing user certificates of {user}; client kits of {user}." in (result.message or ""), result.message
    assert not due_report(env, "primary")["any_due"]
    user_dir = f"{CERT_DIR}/client/users/{user}"
    assert serial(env, "primary", f"{user_dir}/client.crt") == serial(env, "primary",
                                                                       f"{CERT_DIR}/kits/{user}/client.crt")
    for name in ("client.crt", "client.key", "root.crt"):
        code, data = env.exec("primary", ["cat", f"{user_dir}/{name}"])
        assert code == 0, data
        code, out = env.exec("client", ["sh", "-c", f"mkdir -p /tmp/rn-user && cat > /tmp/rn-user/{name}"],
                             stdin=data.encode())
        assert code == 0, out
    code, out = env.exec("client", ["mariadb", "--host=" + env.host["primary"], "--user=" + user,
                                    "--connect-timeout=10", "--batch", "--skip-column-names",
                                    "--ssl-verify-server-cert", "--ssl-ca=/tmp/rn-user/root.crt",
                                    "--ssl-cert=/tmp/rn-user/client.crt", "--ssl-key=/tmp/rn-user/client.key",
                                    "-e", "SELECT CURRENT_USER()"], env={"MYSQL_PWD": password})
    assert code == 0 and user in out, out
