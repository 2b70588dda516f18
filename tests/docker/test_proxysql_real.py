"""The ProxySQL applier against a real ProxySQL, when the local engine has an image of it.

ProxySQL is not packaged for Debian and no registry is reachable from this project's machines, so
every other docker test uses the admin-interface double. Set ``DBTLS_PROXYSQL_IMAGE`` to an image
the local engine already has (with ``python3`` and ``openssl`` inside, as platform nodes have) to
run the same applier against the real server. Without it this test reports itself skipped, also
under ``DBTLS_STRICT=1``: no CI machine of this project can have that image.
"""

from __future__ import annotations

import json
import os
import subprocess

import docker.errors
import pytest
from agent_helpers import agent, agent_json, install_agent, issue_certificates
from harness import docker_exec, exec_argv

from dbtls.sim import cluster
from support import env_name

IMAGE = os.environ.get("DBTLS_PROXYSQL_IMAGE", "")


@pytest.fixture
def real_proxysql(engine):
    if not IMAGE:
        pytest.skip("DBTLS_PROXYSQL_IMAGE is not set (no real ProxySQL image here; the double covers CI)")
    try:
        engine.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"DBTLS_PROXYSQL_IMAGE={IMAGE} is not in the local engine")
    env = env_name("prx-real")
    nodes = cluster.up("mariadb-cluster", env=env, progress=lambda m: None)
    container = engine.containers.run(IMAGE, name=f"dbtls-{env}-proxysql-real", hostname=f"node199-{env}.vap.test",
                                      detach=True, network=cluster.network_name(env))
    try:
        for tool in ("python3", "openssl"):
            if docker_exec(container.name, ["sh", "-c", f"command -v {tool}"]).returncode != 0:
                pytest.skip(f"{IMAGE} has no {tool}; platform ProxySQL nodes run the agent with it")
        admin = ["mysql", "-h127.0.0.1", "-P6032", "-uadmin", "-padmin", "-e"]
        cluster.wait_until(lambda: docker_exec(container.name, admin + ["SELECT 1"]).returncode == 0, 120,
                           "the real ProxySQL admin interface")
        backends = [n.hostname for n in nodes if n.role == "mariadb"]
        rows = ",".join(f"(10, '{h}', 3306)" for h in backends)
        sql = f"INSERT INTO mysql_servers (hostgroup_id, hostname, port) VALUES {rows}; LOAD MYSQL SERVERS TO RUNTIME"
        assert docker_exec(container.name, admin + [sql]).returncode == 0
        yield container, next(n.name for n in nodes if n.role == "mariadb" and n.is_master)
    finally:
        container.remove(force=True, v=True)
        cluster.down(env, progress=lambda m: None)


def test_applier_enables_and_restores_a_real_proxysql(real_proxysql):
    proxy, primary = real_proxysql
    env, name = None, proxy.name  # the helpers take container names; no Env object is needed
    install_agent(env, name)
    issue_certificates(env, primary, [name], client=False)
    before = agent_json(env, name, "status", "--role", "proxysql")
    result = agent_json(env, name, "enable", "--role", "proxysql")
    assert result.get("role") == "proxysql", result
    served = subprocess.run(exec_argv(name, ["sh", "-c",
                                             "openssl s_client -starttls mysql -connect 127.0.0.1:6033 </dev/null"
                                             " 2>/dev/null | openssl x509 -noout -fingerprint -sha256"], stdin=False),
                            capture_output=True, text=True)
    ours = subprocess.run(exec_argv(name, ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                                           "/var/lib/jelastic/keys/SSL-TLS/server/server.crt"], stdin=False),
                          capture_output=True, text=True)
    assert served.stdout.strip() and served.stdout.strip() == ours.stdout.strip(), (served.stdout, ours.stdout)
    proc = agent(env, name, "disable", "--role", "proxysql")
    assert proc.returncode == 0, proc.stderr.decode()
    after = agent_json(env, name, "status", "--role", "proxysql")
    print("status before/after:", json.dumps(before), json.dumps(after))
    assert after["runtime_variables"] == before["runtime_variables"], (before, after)
    assert after["servers"] == before["servers"] and after["users"] == before["users"], (before, after)
