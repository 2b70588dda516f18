"""No secret on any command line, in any message or log; key files locked down; one CA key.

The add-on is installed, re-issued and uninstalled through manifest.jps on a pg-cluster and on a
mariadb-cluster of its own while a sampler in every container records each process's
/proc/<pid>/cmdline. Afterwards none of the environment's passwords (PostgreSQL's webadmin,
replication and Pgpool users; MariaDB's root, application and replication users; the ProxySQL
admin), no private key material and not the pgpool key may appear in those command lines, in the
manifest's messages and transcripts, in the agent's output or in the nodes' logs. In between, key
files must be 0600 and owned by the service user, and the CA key must exist on exactly one node
(looked for by name and by content on every node's filesystem).

The simulated ProxySQL's admin password is ``admin``, its user name, which no search can tell
apart; before the add-on runs it is changed to a random one (as an operator would: admin variable,
runtime, disk, /etc/proxysql.cnf), so that a leak of it would be found.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hardening_helpers import proxysql_admin
from harness import CERT_DIR, RELEASES, Env, exec_argv, sim_env, wait_for

from dbtls.addon.project import build_outputs, repo_root, write_outputs
from dbtls.sim import addon, cluster, platform

SAMPLER_SRC = Path(__file__).with_name("cmdline_sampler.py")
SAMPLER = "/tmp/dbtls-cmdline-sampler.py"
SAMPLES, STOP = "/tmp/dbtls-cmdlines.txt", "/tmp/dbtls-cmdlines.stop"
PGPOOL_KEY = "/var/lib/pgsql/.pgpoolkey"
LOGS = "/var/log /var/lib/pgsql/data/log /var/lib/pgsql/data/pg_log /var/lib/dbtls-sim"
PASSWORD_KEYS = ("WEBADMIN_PASSWORD", "REPL_PASSWORD", "PGPOOL_PASSWORD", "MYSQL_ROOT_PASSWORD", "APP_PASSWORD",
                 "REPLICA_PSWD", "PROXYSQL_ADMIN_PASSWORD")
PREFIX = os.environ.get("DBTLS_HARDENING_PREFIX", "hd")
#: Per topology: the layers install reports, the install settings, the key files' service user by node role.
TOPOLOGIES = {
    "pg-cluster": (["sqldb", "pgpool"], {}, {"postgres": "postgres", "pgpool": "postgres"}),
    # ProxySQL reads its own copy (datadir, owned proxysql); the node has no mysql user, so root keeps server/.
    "mariadb-cluster": (["sqldb", "proxy"], {"requireTls": True}, {"mariadb": "mysql", "proxysql": "root"}),
}
PROXYSQL_KEY = "/var/lib/proxysql/proxysql-key.pem"
PROXYSQL_FILES = ("/etc/proxysql.cnf", "/var/lib/proxysql/admin-credentials")


@pytest.fixture(scope="module", params=[(t, r) for t in TOPOLOGIES for r in RELEASES],
                ids=lambda p: f"{p[0]}-{p[1]}")
def env(request, engine) -> Iterator[Env]:
    write_outputs(repo_root(), build_outputs(repo_root()))  # the manifest must pin the current agent
    topology, release = request.param
    for e in sim_env(topology, release, f"{PREFIX}s"):
        if "proxysql" in e.c:
            rotate_proxysql_admin(e)
        yield e


def rotate_proxysql_admin(env: Env) -> None:
    """A random ProxySQL admin password, set through stdin only (never on a command line)."""
    rc, current = env.exec("proxysql", ["cat", PROXYSQL_FILES[1]])  # a kept environment has its own already
    assert rc == 0, current
    (user, old), new = current.strip().split(":", 1), os.urandom(12).hex()
    sql = (f"UPDATE global_variables SET variable_value='{user}:{new}' WHERE variable_name='admin-admin_credentials';\n"
           "LOAD ADMIN VARIABLES TO RUNTIME;\nSAVE ADMIN VARIABLES TO DISK;\n")
    rc, out = env.exec("proxysql", ["mariadb", "--skip-ssl", "-h127.0.0.1", "-P6032", f"-u{user}"], stdin=sql.encode(),
                       env={"MYSQL_PWD": old})
    assert rc == 0, out
    edit = ("import re, sys\nnew = sys.stdin.read()\ncnf, creds = sys.argv[1:3]\n"
            "text, n = re.subn(r'admin_credentials=\"[^\"]*\"', 'admin_credentials=\"' + new + '\"', open(cnf).read())\n"
            "assert n == 1, cnf\nopen(cnf, 'w').write(text)\nopen(creds, 'w').write(new + '\\n')\n")
    rc, out = env.exec("proxysql", ["python3", "-c", edit, *PROXYSQL_FILES], stdin=f"{user}:{new}".encode())
    assert rc == 0, out
    env.secrets["PROXYSQL_ADMIN_PASSWORD"] = new
    assert proxysql_admin(env, "SELECT 1").strip() == "1"
    for path in PROXYSQL_FILES:
        assert f"{user}:{new}" in env.exec("proxysql", ["cat", path])[1], path


def containers(env: Env) -> list[str]:
    return [n.name for n in env.nodes]


def session(env: Env, work):
    engine = cluster.client()
    with platform.serve(repo_root(), platform.gateway(engine, env.name)) as base_url:
        return work(addon.Session(env.name, base_url))


def start_samplers(env: Env) -> None:
    for name in containers(env):
        subprocess.run(["docker", "cp", str(SAMPLER_SRC), f"{name}:{SAMPLER}"], check=True, capture_output=True)
        env.exec(name, ["rm", "-f", SAMPLES, STOP])
        subprocess.run(exec_argv(name, ["python3", SAMPLER, SAMPLES, STOP, "1500"], stdin=False, detach=True),
                       check=True)
    # The sampler is running once it shows up in its own container's process list.
    for name in containers(env):
        wait_for(lambda n=name: SAMPLER in env.exec(n, ["ps", "-eo", "args"])[1], 30, f"sampler in {name}")


def stop_samplers(env: Env) -> dict[str, str]:
    for name in containers(env):
        env.exec(name, ["touch", STOP])
    out = {}
    for name in containers(env):
        wait_for(lambda n=name: env.exec(n, ["test", "-s", SAMPLES])[0] == 0, 30, f"sampler output in {name}")
        out[name] = env.exec(name, ["cat", SAMPLES])[1]
    return out


def key_material(env: Env) -> dict[str, list[str]]:
    """Tell-tale pieces of every private key and the pgpool key now on the nodes (by node)."""
    found: dict[str, list[str]] = {}
    for name in containers(env):
        rc, out = env.exec(name, ["bash", "-c", f"cat $(find {CERT_DIR} -name '*.key' 2>/dev/null) /dev/null"])
        pieces = [line for line in out.splitlines() if len(line) >= 40 and "PRIVATE KEY" not in line]
        rc, key = env.exec(name, ["bash", "-c", f"cat {PGPOOL_KEY} 2>/dev/null || true"])
        if key.strip():
            pieces.append(key.strip())
        found[name] = pieces[::3]  # every third base64 line is plenty to recognise a key
    return found


def secrets(env: Env) -> list[str]:
    return [env.secrets[k] for k in PASSWORD_KEYS if len(env.secrets.get(k, "")) >= 8]


def leaks(text: str, needles: list[str]) -> list[str]:
    hits = [n[:6] + "..." for n in needles if n and n in text]
    if re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text):
        hits.append("PEM private key")
    return hits


def check_key_files(env: Env) -> list[str]:
    """Problems with key files: server/client/pgpool/ProxySQL keys 0600 owned by the service user,
    the CA key 0600 root on one node."""
    bad, ca_nodes = [], []
    owners = TOPOLOGIES[env.topology][2]
    for n in env.nodes:
        if n.role not in owners:
            continue
        rc, out = env.exec(n.name, ["bash", "-c", f"stat -c '%n %a %U' {CERT_DIR}/server/server.key "
                                    f"{CERT_DIR}/client/client.key {PGPOOL_KEY} {PROXYSQL_KEY} {CERT_DIR}/ca/ca.key "
                                    "2>/dev/null; true"])
        for line in out.splitlines():
            path, mode, owner = line.split()
            wanted = "root" if path.endswith("/ca/ca.key") else "proxysql" if path == PROXYSQL_KEY else owners[n.role]
            if mode != "600" or owner != wanted:
                bad.append(f"{n.name}: {line} (want 600 {wanted})")
            if path.endswith("/ca/ca.key"):
                ca_nodes.append(n.name)
        if f"{CERT_DIR}/server/server.key" not in out:
            bad.append(f"{n.name}: no server.key")
    if len(ca_nodes) != 1:
        return bad + [f"CA key on {ca_nodes}"]
    ca_node = ca_nodes[0]
    rc, ca_key = env.exec(ca_node, ["cat", f"{CERT_DIR}/ca/ca.key"])
    digest = subprocess.run(["sha256sum"], input=ca_key.encode(), capture_output=True).stdout.split()[0].decode()
    body = "".join(ca_key.splitlines()[1:-1])
    for name in containers(env):
        # Same name, or same size and content, anywhere outside /proc and /sys.
        script = ("find / -xdev \\( -path /proc -o -path /sys \\) -prune -o -type f "
                  f"\\( -name 'ca.key*' -o -name '*ca*.key' -o -size {len(ca_key.encode())}c \\) -print 2>/dev/null "
                  "| while read -r f; do echo \"$(sha256sum < \"$f\" | cut -c1-64) $f\"; done")
        rc, out = env.exec(name, ["bash", "-c", script])
        named = [line.split(None, 1)[1] for line in out.splitlines()
                 if line.startswith(digest) or re.search(r"/[^/]*ca[^/]*\.key", line)]
        if name == ca_node:
            if named != [f"{CERT_DIR}/ca/ca.key"]:
                bad.append(f"CA node {name}: {named}")
            continue
        if named:
            bad.append(f"{name} holds {named}")
        # A stretch of the key's base64 in any file (a copy in another format or concatenated).
        rc, grep = env.exec(name, ["bash", "-c", "grep -rlF -f /dev/stdin /etc /var /root /home /opt /tmp "
                                   "2>/dev/null; true"], stdin=body[100:160].encode())
        if grep.strip():
            bad.append(f"{name} holds CA key material in {grep.split()}")
    return bad


@pytest.fixture(scope="module")
def run(env) -> dict:
    """Install, re-issue (server) and uninstall through the manifest with every sampler running."""
    outcome: dict = {"messages": [], "transcripts": [], "key_files": [], "material": set()}
    start_samplers(env)
    try:
        layers, settings, _ = TOPOLOGIES[env.topology]
        results = session(env, lambda s: s.install(dict(settings)))
        assert [g for g, _ in results] == layers, results
        assert all(r.ok for _, r in results), [r.error for _, r in results]
        for phase in ("install", "reissue"):
            outcome["material"].update(p for pieces in key_material(env).values() for p in pieces)
            outcome["key_files"] += [f"after {phase}: {p}" for p in check_key_files(env)]
            if phase == "install":
                results.append(("reissue", session(env, lambda s: s.press("Re-issue certificates",
                                                                          {"scope": "server"}))))
        results += session(env, lambda s: s.uninstall())
    finally:
        outcome["samples"] = stop_samplers(env)
    for group, result in results:
        assert result.ok, (group, result.error)
        outcome["messages"].append(f"{result.message or ''}\n{result.error or ''}\n" + "\n".join(result.log))
        outcome["transcripts"].append("\n".join(f"{st.out}\n{st.err}\n{st.detail}" for st in result.steps))
    outcome["needles"] = secrets(env) + sorted(outcome["material"])
    assert len(outcome["needles"]) > len(secrets(env)), "no key material was collected"
    return outcome


def test_no_secret_on_any_command_line(env, run):
    bad = {}
    for name, text in run["samples"].items():
        scans = int(text.splitlines()[0].split()[-1])
        assert scans > 100, (name, scans)  # the sampler really ran during the add-on's work
        hit = leaks(text, run["needles"])
        if hit:
            bad[name] = hit
    print("sampled command lines:", {n: len(t.splitlines()) for n, t in run["samples"].items()})
    assert not bad, bad


def test_messages_and_node_logs_hold_no_secret(env, run):
    bad = {f"message {i}": leaks(t, run["needles"]) for i, t in enumerate(run["messages"])}
    bad = {k: v for k, v in bad.items() if v}
    for name in containers(env):
        if name == env.c["client"]:
            continue
        rc, out = env.exec(name, ["bash", "-c", f"grep -rlF -f /dev/stdin {LOGS} 2>/dev/null; true"],
                           stdin="\n".join(run["needles"]).encode())
        if out.strip():
            bad[f"logs {name}"] = out.split()
    assert not bad, bad


def test_manifest_transcript_holds_no_secret(env, run):
    bad = {f"result {i}": leaks(t, run["needles"]) for i, t in enumerate(run["transcripts"])}
    assert not {k: v for k, v in bad.items() if v}, bad


def test_key_files_locked_down_and_ca_key_on_one_node(env, run):
    assert run["key_files"] == []
