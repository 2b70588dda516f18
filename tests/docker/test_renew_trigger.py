"""The automatic renewal trigger on simulated pg-cluster and mariadb-cluster: cron job, token, platform script,\nuninstall.

What is real: the built manifest runs through the interpreter; the agent writes ``/etc/cron.d/
dbtls-renew`` and the 0600 token file on every node of each layer; the cron line's own command runs
on the node (as cron would run it, ``sh -c`` as root) and makes a real HTTPS POST, verified against
the node's trusted roots.

What is simulated: the platform's HTTPS endpoint is a small listener in the environment's client
container (its certificate is added to the nodes' trusted roots, standing in for the platform's
publicly trusted one); it records the request and answers ``{"result": 0}``. The test then hands the
recorded request to the simulated platform (``Session.invoke_script``), which runs the platform
script the install created, and the ``renew`` action that script starts (docs/renewal.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import urllib.parse
from collections.abc import Iterator

import pytest
from harness import (
    CERT_DIR,
    NODE_AGENT,
    RELEASES,
    Env,
    combined,
    docker_exec,
    due_report,
    exec_argv,
    shorten_server_certificate,
    sim_env,
    wait_for,
)

from dbtls.addon.project import build_outputs, repo_root, write_outputs
from dbtls.sim import addon, platform

PORT = 8443
CRON = "/etc/cron.d/dbtls-renew"
TOKEN_FILE = f"{CERT_DIR}/.dbtls-state/renew-token"
LOG = "/var/log/dbtls-renew.log"
CAPTURE = "/tmp/rt-captured.jsonl"
AGENT = NODE_AGENT
LISTENER = r"""
import http.server, json, os, ssl
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        os.umask(0o077)
        with open("__CAPTURE__", "a") as out:
            out.write(json.dumps({"path": self.path, "type": self.headers.get("Content-Type"), "body": body}) + "\n")
        answer = b'{"result": 0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("0.0.0.0", __PORT__), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/tmp/rt-listen.crt", "/tmp/rt-listen.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
""".replace("__CAPTURE__", CAPTURE).replace("__PORT__", str(PORT))


def run(env: Env, node: str, script: str, stdin: bytes | None = None) -> str:
    code, out = env.exec(node, ["bash", "-c", script], stdin=stdin)
    assert code == 0, (node, script[:80], out)
    return out


def layer_nodes(env: Env) -> list[str]:
    return [n.name for n in env.nodes if n.role in ("postgres", "pgpool", "mariadb", "proxysql")]


class Platform:
    """The environment, its listener's host and one session at a time (an HTTP server per call)."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.host = f"{env.ip['client']}:{PORT}"

    def session(self, work):
        with platform.serve(repo_root(), platform.gateway(self.env.engine, self.env.name)) as base_url:
            return work(addon.Session(self.env.name, base_url, platform_host=self.host))


def start_listener(env: Env) -> None:
    ip = env.ip["client"]
    run(env, "client", "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sim-platform "
                       f"-addext subjectAltName=IP:{ip} -keyout /tmp/rt-listen.key -out /tmp/rt-listen.crt 2>/dev/null")
    run(env, "client", "cat > /tmp/rt-listen.py", stdin=LISTENER.encode())
    subprocess.run(exec_argv(env.c["client"], ["python3", "/tmp/rt-listen.py"], stdin=False, detach=True), check=True)
    wait_for(lambda: env.exec("client", ["bash", "-c", f"exec 3<>/dev/tcp/{ip}/{PORT}"])[0] == 0, 30, "the listener")
    cert = run(env, "client", "cat /tmp/rt-listen.crt").encode()
    for node in layer_nodes(env):
        run(env, node, "cat > /usr/local/share/ca-certificates/sim-platform.crt && update-ca-certificates >/dev/null",
            stdin=cert)


def captured(env: Env) -> list[dict]:
    out = run(env, "client", f"cat {CAPTURE} 2>/dev/null || true")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def cron_command(env: Env, node: str) -> str:
    """The command of the cron file's one job (what cron hands ``sh -c`` as root)."""
    lines = [line for line in run(env, node, f"cat {CRON}").splitlines()
             if line.strip() and not line.startswith("#") and not re.match(r"^[A-Z]+=", line)]
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 6)
    assert fields[2:5] == ["*", "*", "*"] and fields[5] == "root", lines[0]
    assert 0 <= int(fields[0]) <= 59 and 0 <= int(fields[1]) <= 23, lines[0]
    return fields[6]


def run_job(env: Env, node: str) -> None:
    proc = docker_exec(env.container(node), ["sh", "-c", cron_command(env, node)], user="root")
    assert proc.returncode == 0, (node, combined(proc), run(env, node, f"tail -3 {LOG} || true"))


@pytest.fixture(scope="module", params=RELEASES)
def sim(request, engine) -> Iterator[Platform]:
    write_outputs(repo_root(), build_outputs(repo_root()))  # the manifest must pin the current agent
    for env in sim_env("pg-cluster", request.param, "rt"):
        start_listener(env)
        yield Platform(env)


@pytest.fixture(scope="module")
def installed(sim):
    results = sim.session(lambda s: s.install({}))
    assert [g for g, _ in results] == ["sqldb", "pgpool"]
    for group, result in results:
        assert result.ok, (group, result.error)
    return results


def script_names(sim: Platform) -> list[str]:
    return sorted(sim.session(lambda s: list(s.interp.platform.scripts)))


def script_code(sim: Platform, group: str) -> str:
    return sim.session(lambda s: s.interp.platform.scripts[f"{sim.env.name}-{group}-dbtls-renew"]["code"])


def test_every_node_has_the_cron_job_and_its_own_0600_token_whose_digest_the_script_holds(sim, installed):
    """Each node drew its own token; its layer's platform script holds the token's SHA-256 and no
    token; no token is in the text or output of any step of the install runs."""
    env = sim.env
    tokens = {}
    for node in layer_nodes(env):
        out = run(env, node, f"stat -c '%a %U' {CRON} {TOKEN_FILE}").split("\n")
        assert out[:2] == ["644 root", "600 root"], (node, out)
        token = run(env, node, f"cat {TOKEN_FILE}")
        assert re.fullmatch(r"[0-9a-f]{64}", token), node
        assert token not in run(env, node, f"cat {CRON}")
        cron_command(env, node)
        tokens[node] = token
    assert len(set(tokens.values())) == len(tokens)
    assert script_names(sim) == [f"{env.name}-pgpool-dbtls-renew", f"{env.name}-sqldb-dbtls-renew"]
    group = {n.name: n.group for n in env.nodes}
    codes = {g: script_code(sim, g) for g in ("sqldb", "pgpool")}
    for node, token in tokens.items():
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert digest in codes[group[node]], node
        assert digest not in codes["pgpool" if group[node] == "sqldb" else "sqldb"], node
        assert not any(token in code for code in codes.values()), node
    recorded = [(step.detail or "") + (step.out or "") + (step.err or "") for _, r in installed for step in r.steps]
    recorded += [line for _, r in installed for line in r.log]
    assert any(hashlib.sha256(t.encode()).hexdigest() in text for t in tokens.values() for text in recorded)
    for token in tokens.values():
        assert not any(token in text for text in recorded)


def test_nothing_due_makes_no_call(sim, installed):
    env = sim.env
    for node in layer_nodes(env):
        run_job(env, node)
        assert "nothing due within 30 days" in run(env, node, f"tail -1 {LOG}"), node
    assert captured(env) == []


def short_lived_client_certificate(env: Env) -> None:
    """The standby's client certificate re-issued by the environment's CA with 10 days to live (same key)."""
    csr = run(env, "standby", f"openssl req -new -key {CERT_DIR}/client/client.key -subj /CN=webadmin")
    pem = run(env, "primary", f"{AGENT} ca sign --kind client --days 10 --format pem", stdin=csr.encode())
    cert = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    run(env, "standby", f"cat > {CERT_DIR}/client/client.crt", stdin=cert.encode())
    due = json.loads(run(env, "standby", f"{AGENT} certs due --within-days 30"))
    assert due["any_due"] and any(p.endswith("client/client.crt") for p in due["due"]), due


def test_a_due_certificate_makes_one_call_and_the_platform_runs_renew(sim, installed):
    env = sim.env
    short_lived_client_certificate(env)
    for node in layer_nodes(env):
        run_job(env, node)
    calls = captured(env)
    assert len(calls) == 1, calls
    call = calls[0]
    url = urllib.parse.urlsplit(call["path"])
    name = url.path.lstrip("/")
    assert name == f"{env.name}-sqldb-dbtls-renew"
    assert call["type"] == "application/x-www-form-urlencoded"
    params = {k: v[0] for k, v in urllib.parse.parse_qs(call["body"]).items()}
    token = run(env, "standby", f"cat {TOKEN_FILE}")
    assert params == {"token": token}
    assert token not in call["path"]
    log = run(env, "standby", f"cat {LOG}")
    assert "renewal requested" in log and token not in log

    def invoke(s):
        answer = s.invoke_script(name, params)
        return answer, [(a.node_group, action, r.ok) for a, action, r in s.interp.executed]

    answer, executed = sim.session(invoke)
    assert answer["result"] == 0, answer
    assert executed == [("sqldb", "renew", True)]
    assert not due_report(env, "standby")["any_due"]
    wrong, executed = sim.session(lambda s: (s.invoke_script(name, {"token": "x" * 64}), list(s.interp.executed)))
    assert wrong["result"] != 0 and executed == []


def test_after_a_redeploy_the_nodes_keep_their_tokens_and_get_the_lost_cron_job_back(sim, installed):
    """A redeploy keeps the certificate folder (redeploy.conf) but not /etc/cron.d: the handler puts
    the cron job back; the primary's token stays valid. A node whose token went too (the standby
    here) draws a new one; its old one starts nothing."""
    env = sim.env
    db_nodes = [n.name for n in env.nodes if n.role == "postgres"]
    primary, standby = env.c["primary"], env.c["standby"]
    before = {node: run(env, node, f"cat {TOKEN_FILE}") for node in db_nodes}
    run(env, "standby", f"rm {CRON} {TOKEN_FILE}")
    fired = sim.session(lambda s: s.fire("onAfterRedeployContainer", {"nodeGroup": "sqldb"}))
    assert [(g, r.ok) for g, r in fired] == [("sqldb", True)], [(g, r.error) for g, r in fired]
    after = {node: run(env, node, f"cat {TOKEN_FILE}") for node in db_nodes}
    assert primary in db_nodes and standby in db_nodes, (db_nodes, env.c)
    assert after[primary] == before[primary] and after[standby] != before[standby]
    for node in db_nodes:
        cron_command(env, node)
    name = f"{env.name}-sqldb-dbtls-renew"

    def invoke(token):
        return sim.session(lambda s: (s.invoke_script(name, {"token": token}),
                                      [(a.node_group, action) for a, action, _ in s.interp.executed]))

    stale, executed = invoke(before[standby])
    assert stale["result"] != 0 and executed == []
    for node in db_nodes:
        fresh, executed = invoke(after[node])
        assert fresh["result"] == 0 and executed == [("sqldb", "renew")], (node, fresh)


def test_uninstall_removes_cron_token_and_platform_scripts(sim, installed):
    env = sim.env
    results = sim.session(lambda s: s.uninstall())
    for group, result in results:
        assert result.ok, (group, result.error)
    for node in layer_nodes(env):
        assert run(env, node, f"ls {CRON} {TOKEN_FILE} 2>/dev/null || true").strip() == "", node
    assert script_names(sim) == []


# --- mariadb-cluster: the same trigger on MariaDB and ProxySQL nodes ------------------------------------

@pytest.fixture(scope="module", params=RELEASES)
def my_sim(request, engine) -> Iterator[Platform]:
    write_outputs(repo_root(), build_outputs(repo_root()))
    for env in sim_env("mariadb-cluster", request.param, "rm"):
        start_listener(env)
        yield Platform(env)


def test_mariadb_cluster_a_due_replica_certificate_is_renewed_through_the_trigger(my_sim):
    """Install schedules the check on every MariaDB and ProxySQL node; a replica whose server
    certificate ends in 10 days makes the one call; the platform script runs renew, after which
    nothing is due; uninstall removes the jobs, tokens and scripts."""
    env = my_sim.env
    results = my_sim.session(lambda s: s.install({}))
    assert all(r.ok for _, r in results) and len(results) == 2, [(g, r.error) for g, r in results]
    groups = sorted(g for g, _ in results)
    nodes = layer_nodes(env)
    assert {n.role for n in env.nodes if n.name in nodes} == {"mariadb", "proxysql"}
    for node in nodes:
        out = run(env, node, f"stat -c '%a %U' {CRON} {TOKEN_FILE}").split("\n")
        assert out[:2] == ["644 root", "600 root"], (node, out)
        cron_command(env, node)
    assert script_names(my_sim) == sorted(f"{env.name}-{g}-dbtls-renew" for g in groups)
    replica = env.c["standby"]
    shorten_server_certificate(env, replica, 10)
    for node in nodes:
        run_job(env, node)
    calls = captured(env)
    assert len(calls) == 1, calls
    name = urllib.parse.urlsplit(calls[0]["path"]).path.lstrip("/")
    assert name == f"{env.name}-sqldb-dbtls-renew"
    params = {k: v[0] for k, v in urllib.parse.parse_qs(calls[0]["body"]).items()}
    assert params == {"token": run(env, replica, f"cat {TOKEN_FILE}")}

    def invoke(s):
        answer = s.invoke_script(name, params)
        return answer, [(a.node_group, action, r.ok) for a, action, r in s.interp.executed]

    answer, executed = my_sim.session(invoke)
    assert answer["result"] == 0 and executed == [("sqldb", "renew", True)], (answer, executed)
    assert not due_report(env, replica)["any_due"]
    results = my_sim.session(lambda s: s.uninstall())
    assert all(r.ok for _, r in results), [(g, r.error) for g, r in results]
    for node in nodes:
        assert run(env, node, f"ls {CRON} {TOKEN_FILE} 2>/dev/null || true").strip() == "", node
    assert script_names(my_sim) == []
