"""The built add-on, run through the JPS interpreter on a simulated pg-cluster, checked with psql.

Everything goes through manifest.jps: the agent is downloaded from a local HTTP server and checked
against the pinned sha256, CSRs and certificates travel through ``${response.out}``. The checks use
real clients from the ``client`` container: ``sslmode=verify-full`` to every node and through
Pgpool-II, plaintext refused, re-issue keeps the root, uninstall restores every file byte for byte.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import CERT_DIR, RELEASES, Sim, combined, docker_exec, exec_argv, sim_env

from dbtls.addon.links import TUTORIAL_MYSQL, TUTORIAL_PG
from dbtls.addon.project import build_outputs, repo_root, write_outputs
from dbtls.sim import cluster

CONFIGS = {
    "postgres": ["/var/lib/pgsql/data/postgresql.conf", "/var/lib/pgsql/data/pg_hba.conf",
                 "/var/lib/pgsql/data/postgresql.auto.conf"],
    "pgpool": ["/etc/pgpool-II/pgpool.conf", "/etc/pgpool-II/pool_hba.conf", "/etc/pgpool-II/pool_passwd"],
}

@pytest.fixture(scope="module", params=RELEASES)
def sim(request, engine) -> Iterator[Sim]:
    write_outputs(repo_root(), build_outputs(repo_root()))  # the manifest must pin the current agent
    for env in sim_env("pg-cluster", request.param, os.environ.get("DBTLS_MANIFEST_PG_ENV_PREFIX", "mpg")):
        yield Sim(env)


def sha256_of(env, node, paths: list[str]) -> dict[str, str]:
    code, out = env.exec(node.name, ["bash", "-c", "sha256sum " + " ".join(paths) + " 2>/dev/null; true"])
    return dict(reversed(line.split()) for line in out.splitlines() if line.strip())


def root_crt(env) -> str:
    code, out = env.exec(env.node("postgres").name, ["cat", f"{CERT_DIR}/server/root.crt"])
    assert code == 0, out
    return out


def psql(env, host: str, mode: str, sql: str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"):
    conninfo = f"host={host} user=webadmin dbname=postgres connect_timeout=10 sslmode={mode}"
    if mode.startswith("verify"):
        conninfo += " sslrootcert=/tmp/mpg-root.crt"
    return env.exec("client", ["psql", conninfo, "-qAtc", sql], env={"PGPASSWORD": env.secrets["WEBADMIN_PASSWORD"]})


def serials(env) -> dict[str, str]:
    out = {}
    for n in env.nodes:
        if n.role in ("postgres", "pgpool"):
            code, text = env.exec(n.name, ["openssl", "x509", "-noout", "-serial", "-in", f"{CERT_DIR}/server/server.crt"])
            assert code == 0, text
            out[n.name] = text.strip()
    return out


#: Application roles made the platform's way before install: an md5 role used directly, an md5 role
#: let through Pgpool-II as the platform's doc says (pg_md5 --md5auth), a SCRAM role.
APP_ROLES = {"mf_md5": "Md5-direct-Pw-81", "mf_pool": "Md5-pool-Pw-82", "mf_scram": "Scram-Pw-83"}


def psql_as(env, host: str, user: str, mode: str, sql: str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"):
    conninfo = f"host={host} user={user} dbname=postgres connect_timeout=10 sslmode={mode}"
    if mode.startswith("verify"):
        conninfo += " sslrootcert=/tmp/mpg-root.crt"
    return env.exec("client", ["psql", conninfo, "-qAtc", sql], env={"PGPASSWORD": APP_ROLES[user]})


def make_app_roles(env) -> None:
    sql = ("SET password_encryption = 'md5'; "
           f"CREATE ROLE mf_md5 LOGIN PASSWORD '{APP_ROLES['mf_md5']}'; "
           f"CREATE ROLE mf_pool LOGIN PASSWORD '{APP_ROLES['mf_pool']}'; "
           "SET password_encryption = 'scram-sha-256'; "
           f"CREATE ROLE mf_scram LOGIN PASSWORD '{APP_ROLES['mf_scram']}';")
    code, out = env.exec("postgres", ["runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql",
                                      "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
    assert code == 0, out
    code, out = env.exec("pgpool", ["pg_md5", "--md5auth", "--username=mf_pool", "-f", "/etc/pgpool-II/pgpool.conf",
                                    APP_ROLES["mf_pool"]])
    assert code == 0, out


#: (role, layer it logs in through) pairs that work before install, without TLS.
APP_LOGINS = [("mf_md5", "postgres"), ("mf_scram", "postgres"), ("mf_pool", "pgpool"), ("mf_pool", "postgres")]


@pytest.fixture(scope="module")
def installed(sim):
    env = sim.env
    make_app_roles(env)
    for user, role in APP_LOGINS:
        code, out = psql_as(env, env.node(role).hostname, user, "disable", "SELECT 1")
        assert code == 0, (user, role, out)
    before = {n.name: sha256_of(env, n, CONFIGS[n.role]) for n in env.nodes if n.role in CONFIGS}
    results = sim.session(lambda s: s.install({}))
    for group, result in results:
        assert result.ok and not result.stopped or result.message_type == "success", (group, result.error)
    assert [g for g, _ in results] == ["sqldb", "pgpool"]
    # The pre-flight report, taken before anything changed, names the md5 roles and what to do.
    message = results[0][1].message or ""
    assert "mf_md5" in message and "mf_pool" in message and "to do" in message, message
    root = root_crt(env)
    code, out = env.exec("client", ["bash", "-c", f"cat > /tmp/mpg-root.crt <<'EOF'\n{root}\nEOF"])
    assert code == 0, out
    return before


def test_application_roles_keep_logging_in_over_tls(sim, installed):
    """Every login that worked before install still works, now over TLS with the server verified:
    md5 roles through a rule of their own, the SCRAM role, the pg_md5 user through Pgpool-II."""
    env = sim.env
    for user, role in APP_LOGINS:
        code, out = psql_as(env, env.node(role).hostname, user, "verify-full")
        assert (code, out.strip()) == (0, "t"), (user, role, out)
        code, out = psql_as(env, env.node(role).hostname, user, "disable", "SELECT 1")
        assert code != 0, (user, role, out)  # and only over TLS


def test_check_button_changes_nothing_and_reports(sim, installed):
    env = sim.env
    before = {n.name: sha256_of(env, n, CONFIGS[n.role]) for n in env.nodes if n.role in CONFIGS}
    result = sim.session(lambda s: s.press("Check before enabling TLS", {}))
    assert result.ok and result.message_type == "success", result.error
    assert "mf_md5" in (result.message or ""), result.message
    assert {n.name: sha256_of(env, n, CONFIGS[n.role]) for n in env.nodes if n.role in CONFIGS} == before


def test_install_message_lists_every_node(sim, installed):
    rows = sim.session(lambda s: s.rows())
    assert {r.tls for r in rows} == {"ok TLSv1.3"}
    assert len({r.root_sha256 for r in rows}) == 1


def test_nodes_run_the_pinned_agent_compiled_once(sim, installed):
    """The launcher runs the pinned zipapp's contents, unpacked into a root-owned folder named after
    its sha256 and compiled by the node's Python when it was fetched: every module has its bytecode,
    and nothing there is writable by anyone but root."""
    env = sim.env
    sha = (repo_root() / "node-scripts" / "dist" / "dbtls-agent.pyz.sha256").read_text().split()[0]
    script = ("cd /usr/local/lib/dbtls && ls -A && grep -c agent-" + sha + " /usr/local/sbin/dbtls-agent && "
              "echo py=$(find agent-*/dbtls_agent -name '*.py' | wc -l) "
              "pyc=$(find agent-*/dbtls_agent -path '*/__pycache__/*.pyc' | wc -l) && "
              "find . ! -user root -o -perm /022 && /usr/local/sbin/dbtls-agent --version")
    for n in env.nodes:
        if n.role in ("postgres", "pgpool"):
            code, out = env.exec(n.name, ["bash", "-c", script])
            lines = out.split()
            assert code == 0 and "agent-" + sha in lines and "dbtls-agent.pyz" in lines, (n.name, out)
            assert not [x for x in lines if x.startswith((".unpack", "agent-")) and x != "agent-" + sha], out
            assert not [x for x in lines if x.startswith("./")], (n.name, out)  # what find found: not root's alone
            counts = dict(x.split("=") for x in lines if x.startswith(("py=", "pyc=")))
            assert int(counts["py"]) > 40 and counts["pyc"] == counts["py"], (n.name, out)


def test_verify_full_to_every_node_and_through_pgpool(sim, installed):
    env = sim.env
    for n in env.nodes:
        if n.role in ("postgres", "pgpool"):
            code, out = psql(env, n.hostname, "verify-full")
            assert (code, out.strip()) == (0, "t"), (n.hostname, out)


def test_plaintext_is_refused(sim, installed):
    env = sim.env
    for n in env.nodes:
        if n.role in ("postgres", "pgpool"):
            code, out = psql(env, n.hostname, "disable", "SELECT 1")
            assert code != 0 and re.search(r"no (pg|pool)_hba\.conf entry", out), (n.hostname, out)


def test_reissue_server_keeps_the_root(sim, installed):
    env = sim.env
    old_root, old_serials = root_crt(env), serials(env)
    result = sim.session(lambda s: s.press("Re-issue certificates", {"scope": "server"}))
    assert result.ok and result.message_type == "success", result.error
    new_serials = serials(env)
    assert root_crt(env) == old_root
    sqldb = [n.name for n in env.nodes if n.role == "postgres"]
    assert all(new_serials[n] != old_serials[n] for n in sqldb)
    code, out = psql(env, env.node("postgres").hostname, "verify-full")
    assert (code, out.strip()) == (0, "t"), out


def test_scale_out_node_gets_a_certificate_from_the_same_root(sim, installed):
    """A standby added later clones the primary's TLS config; the scale-out handler issues its
    certificate, starts it and enables it, and clients verify it with the same root.crt."""
    from dbtls.sim import scale

    env = sim.env
    old_root = root_crt(env)
    row = scale.scale_out(env.name, "sqldb", progress=lambda m: None)

    def fire(session):
        node = next(n for n in session.interp.env.nodes if n.id == row.node_id)
        # Every installed instance hears the event; the platform documents no order between them.
        return session.fire_scale_out("sqldb", node, order="reverse")

    results = sim.session(fire)
    assert [g for g, _ in results] == ["sqldb"], results  # the pgpool instance's handler is filtered out
    assert all(r.ok for _, r in results), [(g, r.error) for g, r in results]
    proc = docker_exec(row.name, ["cat", f"{CERT_DIR}/server/root.crt"])
    assert (proc.returncode, combined(proc)) == (0, old_root)
    code, out = psql(env, row.hostname, "verify-full", "SELECT pg_is_in_recovery()")
    assert (code, out.strip()) == (0, "t"), out


@pytest.mark.parametrize("order,concurrent", [("install", False), ("reverse", False), ("install", True)])
def test_password_reset_event_in_any_order(sim, installed, order, concurrent):
    """Both instances hear the database layer's password reset; only the database layer's handler
    runs, refreshes Pgpool-II's entry for webadmin, and logins through Pgpool-II keep working."""
    results = sim.session(lambda s: s.fire("onAfterResetServicePassword", {"nodeGroup": "sqldb"},
                                           order=order, concurrent=concurrent))
    assert [g for g, _ in results] == ["sqldb"], results
    assert all(r.ok for _, r in results), [(g, r.error) for g, r in results]
    code, out = psql(sim.env, sim.env.node("pgpool").hostname, "verify-full")
    assert (code, out.strip()) == (0, "t"), out


def test_certificate_status_button(sim, installed):
    result = sim.session(lambda s: s.press("Certificate status", {}))
    assert result.ok and result.message_type == "success"
    assert "node" in (result.message or "") and "TLS on" in (result.message or "")


def test_configuration_tutorial_is_the_layers_own(sim, installed):
    result = sim.session(lambda s: s.press("Configuration Tutorial", {}))
    assert result.ok and result.message_type == "success", result.error
    assert TUTORIAL_PG in (result.message or "") and TUTORIAL_MYSQL not in (result.message or ""), result.message


def test_client_connection_kit_button(sim, installed):
    """The CA node writes the administrator's kit, root-only, and the message says where and how to connect."""
    result = sim.session(lambda s: s.press("Client connection kit", {"dbUser": "webadmin"}))
    assert result.ok and result.message_type == "success", result.error
    kit = f"{CERT_DIR}/kits/webadmin"
    assert kit in (result.message or "") and "sslmode=verify-full" in (result.message or ""), result.message
    ca = sim.env.node("postgres")
    code, out = sim.env.exec(ca.name, ["bash", "-c", f"stat -c '%a %U %n' {kit} {kit}/*"])
    assert code == 0, out
    modes = dict((line.split()[2].rsplit("/", 1)[-1], line.split()[0]) for line in out.splitlines())
    assert modes.pop("webadmin") == "700" and set(modes.values()) == {"600"}, out
    assert {"client.key", "client.pk8", "client.p12", "client.p12.password", "my.cnf", "README.txt"} <= set(modes)


def client_serials(env) -> dict[str, str]:
    out = {}
    for n in env.nodes:
        if n.role == "postgres":
            code, text = env.exec(n.name, ["openssl", "x509", "-noout", "-serial", "-in", f"{CERT_DIR}/client/client.crt"])
            assert code == 0, text
            out[n.name] = text.strip()
    return out


def test_reissue_client_keeps_server_certificates_and_root(sim, installed):
    env = sim.env
    old_root, old_servers, old_clients = root_crt(env), serials(env), client_serials(env)
    result = sim.session(lambda s: s.press("Re-issue certificates", {"scope": "client"}))
    assert result.ok and result.message_type == "success", result.error
    assert root_crt(env) == old_root and serials(env) == old_servers
    new_clients = client_serials(env)
    assert all(new_clients[n] != old_clients[n] for n in old_clients), (old_clients, new_clients)


# --- what clients of Pgpool-II see while the manifest works --------------------------------------

LOOP_SRC = Path(__file__).with_name("pg_client_loop.py")
LOOP = "/tmp/mpg-pg_client_loop.py"
#: Longest outage a client of Pgpool may see: one Pgpool-II restart (about 1.5 s in the simulator,
#: whose service shim polls once a second) with room for a loaded machine.
RESTART_MS = 6000


class PgpoolLoops:
    """pg_client_loop.py through Pgpool-II (one persistent connection, one fresh per query)."""

    def __init__(self, env) -> None:
        self.env = env
        subprocess.run(["docker", "cp", str(LOOP_SRC), f"{env.node('client').name}:{LOOP}"], check=True)
        conninfo = f"host={env.node('pgpool').hostname} user=webadmin dbname=postgres connect_timeout=5"
        self.procs = {}
        for mode in ("persistent", "fresh"):
            env.exec("client", ["rm", "-f", f"/tmp/mpg-{mode}.stop", f"/tmp/mpg-{mode}.ready"])
            self.procs[mode] = subprocess.Popen(
                exec_argv(env.node("client").name,
                          ["python3", LOOP, "--mode", mode, "--conninfo", conninfo, "--deadline", "600",
                           "--stop-file", f"/tmp/mpg-{mode}.stop", "--ready-file", f"/tmp/mpg-{mode}.ready"],
                          env={"PGPASSWORD": env.secrets["WEBADMIN_PASSWORD"]}, stdin=False),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for mode, proc in self.procs.items():
            deadline = time.monotonic() + 60
            while env.exec("client", ["test", "-e", f"/tmp/mpg-{mode}.ready"])[0] != 0:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)

    def stop(self) -> dict[str, dict]:
        reports = {}
        for mode, proc in self.procs.items():
            self.env.exec("client", ["touch", f"/tmp/mpg-{mode}.stop"])
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()
            reports[mode] = json.loads(out.decode().strip().splitlines()[-1])
        return reports


def assert_one_restart_per_pgpool(env, reports: dict[str, dict]) -> None:
    """Each loop saw at most one outage per Pgpool-II node, none longer than a restart."""
    pgpools = len([n for n in env.nodes if n.role == "pgpool"])
    for mode, rep in reports.items():
        outages = rep["outages_ms"]
        assert len(outages) <= pgpools and all(ms <= RESTART_MS for ms in outages), \
            f"{mode}: outages {outages} ms, errors {rep.get('errors')}"


def with_step_checks(sim, work: Callable, check: Callable[[], str]) -> tuple[object, list[str]]:
    """Run ``work(session)`` and ``check()`` after every ``cmd`` of the manifest; return the
    result and the problems ``check`` found, each with the agent command that preceded it."""
    problems: list[str] = []

    def wrapped(session):
        original = session.interp.run_on_nodes

        def run_on_nodes(nodes, script, *args, **kwargs):
            outcome = original(nodes, script, *args, **kwargs)
            problem = check()
            if problem:
                step = next((ln.strip() for ln in script.splitlines() if "$A " in ln), script.splitlines()[0])
                problems.append(f"after {step!r} on {[n.id for n in nodes]}: {problem}")
            return outcome
        session.interp.run_on_nodes = run_on_nodes
        return work(session)
    return sim.session(wrapped), problems


def distrust(env) -> str:
    """Servers whose certificate a node that connects to them (Pgpool-II, the other PostgreSQL
    nodes: standbys) cannot verify against its own root.crt right now."""
    servers = [n for n in env.nodes if n.role == "postgres"]
    bad = []
    for client in (n for n in env.nodes if n.role in ("postgres", "pgpool")):
        hosts = " ".join(s.hostname for s in servers if s.name != client.name)
        code, out = env.exec(client.name, ["bash", "-c", f"""
for h in {hosts}; do
  if ! echo | timeout 10 openssl s_client -connect $h:5432 -starttls postgres -verify_return_error -brief \
       -CAfile {CERT_DIR}/server/root.crt 2>&1 | grep -q 'Verification: OK'; then echo "$h"; fi
done"""])
        bad += [f"{client.hostname} -> {h}" for h in out.split()]
    return ", ".join(bad)


def auth_mismatch(env) -> str:
    """From the Pgpool-II node: webadmin's password login to every backend must work, and every
    backend must ask for the same method (Pgpool refuses sessions when they differ). SCRAM is told
    apart from md5 by ``channel_binding=require``, which only a SCRAM exchange over TLS satisfies."""
    seen = {}
    for n in env.nodes:
        if n.role != "postgres":
            continue
        code, out = env.exec("pgpool", ["psql", "-XAtqc", "SELECT 1",
                                        f"host={n.hostname} user=webadmin dbname=postgres sslmode=prefer "
                                        "channel_binding=require connect_timeout=10"],
                             env={"PGPASSWORD": env.secrets["WEBADMIN_PASSWORD"]})
        seen[n.hostname] = "scram" if code == 0 else "not scram" if "channel binding" in out else out.strip()[-200:]
    if any(v not in ("scram", "not scram") for v in seen.values()) or len(set(seen.values())) > 1:
        return str(seen)
    return ""


def test_reissue_all_makes_a_new_root_that_every_node_serves(sim, installed):
    """A CA rotation: every node trusts both roots before any server presents a certificate of the
    new CA, so after every manifest step each node still verifies the servers it connects to, and
    clients of Pgpool-II see nothing but the one restart Pgpool needs to load its certificate."""
    env = sim.env
    old_root, old_servers = root_crt(env), serials(env)
    loops = PgpoolLoops(env)
    try:
        result, problems = with_step_checks(
            sim, lambda s: s.press("Re-issue certificates", {"scope": "all"}), lambda: distrust(env))
    finally:
        reports = loops.stop()
    assert result.ok and result.message_type == "success", result.error
    assert problems == []
    assert_one_restart_per_pgpool(env, reports)
    new_root = root_crt(env)
    assert new_root != old_root and not new_root.startswith(old_root.strip())  # the new root comes first
    assert old_root.strip() in new_root  # and the old one stays trusted until the next certificate run
    new_servers = serials(env)
    assert all(new_servers[n] != old_servers[n] for n in old_servers), (old_servers, new_servers)
    code, out = psql(env, env.node("postgres").hostname, "verify-full")  # the client trusts the old root only
    assert code != 0, out
    code, out = env.exec("client", ["bash", "-c", f"cat > /tmp/mpg-root.crt <<'EOF'\n{new_root}\nEOF"])
    assert code == 0, out
    for n in env.nodes:
        if n.role in ("postgres", "pgpool"):
            code, out = psql(env, n.hostname, "verify-full")
            assert (code, out.strip()) == (0, "t"), (n.hostname, out)


def test_uninstall_restores_files_and_removes_certificates(sim, installed):
    """Reverse order: the servers stop requiring (rules first, then the md5 secrets), Pgpool-II
    drops TLS with its one restart, the servers stop offering; no step leaves the backends asking
    Pgpool for different authentication methods."""
    env = sim.env
    loops = PgpoolLoops(env)
    try:
        results, problems = with_step_checks(sim, lambda s: s.uninstall(), lambda: auth_mismatch(env))
    finally:
        reports = loops.stop()
    assert [g for g, _ in results] == ["pgpool", "sqldb"]
    assert all(r.ok for _, r in results), [r.error for _, r in results]
    assert problems == []
    assert_one_restart_per_pgpool(env, reports)
    for n in env.nodes:
        if n.role in CONFIGS:
            assert sha256_of(env, n, CONFIGS[n.role]) == installed[n.name], n.name
            code, out = env.exec(n.name, ["bash", "-c", f"ls -A {CERT_DIR} 2>/dev/null; ls /usr/local/sbin/dbtls-agent 2>&1"])
            assert "server" not in out and "ca" not in out.split() and "No such file" in out, (n.name, out)
            code, out = env.exec(n.name, ["ls", "-A", "/usr/local/lib/dbtls"])
            assert code != 0 and "No such file" in out, (n.name, out)  # the zipapp and its compiled copy are gone
    code, out = psql(env, env.node("postgres").hostname, "disable", "SELECT 1")
    assert code == 0, out  # the platform's original md5 host rules are back
    for user, role in APP_LOGINS:
        code, out = psql_as(env, env.node(role).hostname, user, "disable", "SELECT 1")
        assert code == 0, (user, role, out)  # as before install
    # Replication is back before uninstall returned: every standby has a row on the primary.
    standbys = [n for n in cluster.status(env.engine, env.name) if n.role == "postgres"][1:]  # scale-out added one
    code, out = env.exec("postgres", ["runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-qAtc",
                                      "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"])
    assert (code, out.strip()) == (0, str(len(standbys))), out
