"""The built add-on, run through the JPS interpreter on a simulated mariadb-cluster, checked with mariadb.

The MySQL-family twin of test_manifest_pg.py: everything goes through manifest.jps (agent downloaded
and checked against the pinned sha256, CSRs and certificates through ``${response.out}``), installed
with ``requireTls`` on the database layer and then the ProxySQL layer. Checks use the real ``mariadb``
client in the ``client`` container (``--ssl-verify-server-cert`` against the root.crt we copy there)
and the ProxySQL admin test double's tables. Tests run in file order and share one environment
(``mmy-mariadb-cluster-<release>``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest
from harness import CERT_DIR, NODE_AGENT, RELEASES, Sim, sim_env, wait_for

from dbtls.addon.links import TUTORIAL_MYSQL, TUTORIAL_PG
from dbtls.addon.project import build_outputs, repo_root, write_outputs

ROOT_CRT = "/tmp/mmy-root.crt"
USER_CERT_DIR = "/tmp/mmy-user"
SETTINGS = {"requireTls": True}
STATE: dict = {}


@pytest.fixture(scope="module", params=RELEASES)
def sim(request, engine) -> Iterator[Sim]:
    write_outputs(repo_root(), build_outputs(repo_root()))  # the manifest must pin the current agent
    for env in sim_env("mariadb-cluster", request.param, "mmy"):
        yield Sim(env)


def mariadb_nodes(env):
    return [n for n in env.nodes if n.role == "mariadb"]


def sql(env, node, query: str, column_names: bool = False) -> str:
    args = ["mariadb", "-uroot", "--batch"] + ([] if column_names else ["--skip-column-names"]) + ["-e", query]
    code, out = env.exec(node.name, args)
    assert code == 0, out
    return out


def client(env, host: str, query: str, user: str | None = None, password: str | None = None,
           tls: bool = True, cert: str | None = None):
    """The mariadb client in the client container, verifying the server's certificate and name."""
    user = user or "root"
    password = env.secrets["MYSQL_ROOT_PASSWORD"] if password is None else password
    args = ["mariadb", "--host=" + host, "--user=" + user, "--connect-timeout=10", "--batch", "--skip-column-names"]
    args += ["--ssl-verify-server-cert", "--ssl-ca=" + ROOT_CRT] if tls else ["--skip-ssl"]
    if cert:
        args += ["--ssl-cert=" + cert + "/client.crt", "--ssl-key=" + cert + "/client.key"]
    return env.exec("client", args + ["-e", query], env={"MYSQL_PWD": password})


def admin(env, query: str) -> str:
    code, out = env.exec("proxysql", ["mariadb", "--skip-ssl", "-h127.0.0.1", "-P6032", "-uadmin", "--batch",
                                      "--skip-column-names", "-e", query], env={"MYSQL_PWD": "admin"})
    assert code == 0, out
    return out


def proxysql_snapshot(env) -> dict[str, str]:
    return {t: admin(env, "SELECT * FROM " + t + " ORDER BY 1, 2") for t in (
        "runtime_global_variables", "disk.global_variables", "runtime_mysql_servers", "disk.mysql_servers",
        "runtime_mysql_users", "disk.mysql_users")}


def file_sha(env, node, path: str) -> str:
    code, out = env.exec(node.name, ["cat", path])
    assert code == 0, out
    return hashlib.sha256(out.encode()).hexdigest()


def files_of(env, node) -> dict[str, str]:
    return {"my.cnf": file_sha(env, node, "/etc/my.cnf"),
            "conf.d": env.exec(node.name, ["ls", "-A", "/etc/mysql/conf.d"])[1]}


def root_crt(env, node=None) -> str:
    code, out = env.exec((node or mariadb_nodes(env)[0]).name, ["cat", f"{CERT_DIR}/server/root.crt"])
    assert code == 0, out
    return out


def served(env, node) -> dict:
    code, out = env.exec(node.name, [NODE_AGENT, "status"])
    assert code == 0, out
    return json.loads(out)


def serials(env) -> dict[str, str]:
    out = {}
    for n in mariadb_nodes(env):
        code, text = env.exec(n.name, ["openssl", "x509", "-noout", "-serial", "-in", f"{CERT_DIR}/server/server.crt"])
        assert code == 0, text
        out[n.name] = text.strip()
    return out


def replica_fields(env, node) -> dict[str, str]:
    from dbtls_agent.roles.mysql.flavor import parse_status_rows

    rows = parse_status_rows(sql(env, node, "SHOW SLAVE STATUS", column_names=True))
    return rows[0] if rows else {}


def users(env) -> str:
    return sql(env, mariadb_nodes(env)[0], "SELECT User, Host, ssl_type FROM mysql.user ORDER BY 1, 2")


@pytest.fixture(scope="module")
def installed(sim):
    env = sim.env
    STATE["files"] = {n.name: files_of(env, n) for n in mariadb_nodes(env)}
    STATE["proxysql"] = proxysql_snapshot(env)
    STATE["users"] = users(env)
    results = sim.session(lambda s: s.install(dict(SETTINGS)))
    for group, result in results:
        assert result.ok and not result.stopped or result.message_type == "success", (group, result.error)
    assert [g for g, _ in results] == ["sqldb", "proxy"]
    code, out = env.exec("client", ["sh", "-c", f"cat > {ROOT_CRT}"], stdin=root_crt(env).encode())
    assert code == 0, out
    return STATE


def test_install_message_lists_every_node(sim, installed):
    rows = sim.session(lambda s: s.rows())
    db = [r for r in rows if r.node.group == "sqldb"]
    assert len(db) == 2 and all(r.tls.startswith("ok TLSv1.") for r in db), [(r.node.id, r.tls) for r in rows]
    roots = {r.root_sha256 for r in rows if r.node.group in ("sqldb", "proxy")}
    assert len(roots) == 1 and "-" not in roots, rows
    assert all(r.cert != "-" for r in db), rows


def test_client_verifies_every_node_by_hostname(sim, installed):
    env = sim.env
    for n in mariadb_nodes(env):
        code, out = client(env, n.hostname, "SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert code == 0 and "TLSv1." in out, (n.hostname, out)


def test_plaintext_is_refused_with_require_tls(sim, installed):
    env = sim.env
    for n in mariadb_nodes(env):
        code, out = client(env, n.hostname, "SELECT 1", tls=False)
        assert code != 0, (n.hostname, out)
        assert sql(env, n, "SELECT @@require_secure_transport").strip() == "1"


def test_replication_runs_over_tls(sim, installed):
    env = sim.env
    fields = replica_fields(env, mariadb_nodes(env)[1])
    assert fields["Master_SSL_Allowed"] == "Yes" and fields["Slave_IO_Running"] == "Yes", fields
    assert fields["Master_SSL_CA_File"] == CERT_DIR + "/server/root.crt", fields


def test_proxysql_uses_and_serves_tls(sim, installed):
    env = sim.env
    assert admin(env, "SELECT variable_value FROM runtime_global_variables WHERE variable_name='mysql-have_ssl'"
                 ).strip() == "true"
    assert set(admin(env, "SELECT use_ssl FROM runtime_mysql_servers").split()) == {"1"}
    served_sha = admin(env, "SELECT cert_sha256 FROM stats_double_tls").strip()
    code, out = env.exec("proxysql", ["openssl", "x509", "-in", CERT_DIR + "/server/server.crt", "-noout",
                                      "-fingerprint", "-sha256"])
    assert code == 0, out
    assert served_sha == out.strip().split("=")[1].replace(":", "").lower()
    assert root_crt(env, env.node("proxysql")) == root_crt(env)


def test_reissue_server_keeps_the_root(sim, installed):
    env = sim.env
    old_root, old_serials = root_crt(env), serials(env)
    old_served = {n.name: served(env, n)["served"]["sha256"] for n in mariadb_nodes(env)}
    result = sim.session(lambda s: s.press("Re-issue certificates", {"scope": "server"}))
    assert result.ok and result.message_type == "success", result.error
    new_serials = serials(env)
    assert root_crt(env) == old_root
    for n in mariadb_nodes(env):
        assert new_serials[n.name] != old_serials[n.name], n.name
        status = served(env, n)
        assert status["serves_our_certificate"] and status["served"]["sha256"] != old_served[n.name], status
        code, out = client(env, n.hostname, "SELECT 1")
        assert code == 0, out


def test_require_client_certificate_button(sim, installed):
    env = sim.env
    from dbtls.addon import shell
    assert "$A user-cert --user" in shell.require_client_cert()
    code, out = env.exec(mariadb_nodes(env)[0].name, [NODE_AGENT, "user-cert", "--help"])
    assert code == 0, out
    user, password = env.secrets["APP_USER"], env.secrets["APP_PASSWORD"]
    result = sim.session(lambda s: s.press("Require client certificate for a user", {"dbUser": user}))
    assert result.ok and result.message_type == "success", result.error
    assert '"requirement": "X509"' in (result.message or ""), result.message
    primary = mariadb_nodes(env)[0]
    for name in ("client.crt", "client.key"):
        code, data = env.exec(primary.name, ["cat", f"{CERT_DIR}/client/users/{user}/{name}"])
        assert code == 0, data
        code, out = env.exec("client", ["sh", "-c", f"mkdir -p {USER_CERT_DIR} && cat > {USER_CERT_DIR}/{name}"],
                             stdin=data.encode())
        assert code == 0, out
    code, out = client(env, primary.hostname, "SELECT CURRENT_USER()", user=user, password=password)
    assert code != 0, out
    code, out = client(env, primary.hostname, "SELECT CURRENT_USER()", user=user, password=password,
                       cert=USER_CERT_DIR)
    assert code == 0 and user in out, out


def test_scale_out_replica_gets_a_certificate_from_the_same_root(sim, installed):
    from dbtls.sim import scale

    env = sim.env
    old_root = root_crt(env)
    row = scale.scale_out(env.name, "sqldb", progress=lambda m: None)
    # The platform added the new replica's row as ProxySQL's default (use_ssl=0); uninstall must
    # leave it as the platform made it, next to the rows that were there before install.
    for table in ("runtime_mysql_servers", "disk.mysql_servers"):
        added = admin(env, f"SELECT * FROM {table} WHERE hostname='node{row.node_id}'")
        assert added.count("\n") == 1, added
        lines = installed["proxysql"][table].splitlines(keepends=True) + [added]
        installed["proxysql"][table] = "".join(sorted(lines, key=lambda r: (int(r.split("\t")[0]), r.split("\t")[1])))
    env.refresh()
    new = next(n for n in env.nodes if n.name == row.name)
    installed["files"][new.name] = files_of(env, new)  # its own server_id: uninstall must give it back

    def fire(session):
        node = next(n for n in session.interp.env.nodes if n.id == row.node_id)
        return session.fire_scale_out("sqldb", node)  # every installed instance hears the event

    results = sim.session(fire)
    assert results and all(r.ok for _, r in results), [(g, r.error) for g, r in results]
    assert root_crt(env, new) == old_root
    code, out = client(env, row.hostname, "SHOW SESSION STATUS LIKE 'Ssl_version'")
    assert code == 0 and "TLSv1." in out, out
    code, out = client(env, row.hostname, "SELECT 1", tls=False)
    assert code != 0, out
    fields = wait_for(lambda: (lambda f: f if f.get("Slave_IO_Running") == "Yes" else None)(
        replica_fields(env, new)), 60, "the new replica's replication")
    assert fields["Master_SSL_Allowed"] == "Yes", fields
    # The platform added the new replica's row to ProxySQL with use_ssl=0; the handler switched it.
    short = f"node{row.node_id}"
    rows = admin(env, f"SELECT use_ssl FROM runtime_mysql_servers WHERE hostname='{short}'").split()
    assert rows == ["1"], rows
    assert admin(env, f"SELECT use_ssl FROM disk.mysql_servers WHERE hostname='{short}'").split() == ["1"]


def test_certificate_status_button(sim, installed):
    result = sim.session(lambda s: s.press("Certificate status", {}))
    assert result.ok and result.message_type == "success", result.error
    assert "node" in (result.message or "") and "TLS on" in (result.message or ""), result.message


def test_configuration_tutorial_is_the_layers_own(sim, installed):
    result = sim.session(lambda s: s.press("Configuration Tutorial", {}))
    assert result.ok and result.message_type == "success", result.error
    assert TUTORIAL_MYSQL in (result.message or "") and TUTORIAL_PG not in (result.message or ""), result.message


def test_client_connection_kit_button(sim, installed):
    """The CA node writes the administrator's kit, root-only, and the message says where and how to connect."""
    result = sim.session(lambda s: s.press("Client connection kit", {"dbUser": "root"}))
    assert result.ok and result.message_type == "success", result.error
    kit = f"{CERT_DIR}/kits/root"
    assert kit in (result.message or "") and "mariadb --defaults-extra-file" in (result.message or ""), result.message
    ca = mariadb_nodes(sim.env)[0]
    code, out = sim.env.exec(ca.name, ["bash", "-c", f"stat -c '%a %U %n' {kit} {kit}/*"])
    assert code == 0, out
    modes = dict((line.split()[2].rsplit("/", 1)[-1], line.split()[0]) for line in out.splitlines())
    assert modes.pop("root") == "700" and set(modes.values()) == {"600"}, out
    assert {"client.key", "client.pk8", "client.p12", "client.p12.password", "my.cnf", "README.txt"} <= set(modes)


def client_serials(env) -> dict[str, str]:
    out = {}
    for n in mariadb_nodes(env):
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


def test_reissue_all_makes_a_new_root_that_every_node_serves(sim, installed):
    env = sim.env
    old_root, old_servers = root_crt(env), serials(env)
    result = sim.session(lambda s: s.press("Re-issue certificates", {"scope": "all"}))
    assert result.ok and result.message_type == "success", result.error
    new_root = root_crt(env)
    assert new_root != old_root
    new_servers = serials(env)
    assert all(new_servers[n] != old_servers[n] for n in old_servers), (old_servers, new_servers)
    assert root_crt(env, env.node("proxysql")) == new_root
    for n in mariadb_nodes(env):
        assert root_crt(env, n) == new_root, n.name
        code, out = client(env, n.hostname, "SELECT 1")  # the client still trusts only the old root
        assert code != 0, (n.hostname, out)
    code, out = env.exec("client", ["sh", "-c", f"cat > {ROOT_CRT}"], stdin=new_root.encode())
    assert code == 0, out
    for n in mariadb_nodes(env):
        code, out = client(env, n.hostname, "SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert code == 0 and "TLSv1." in out, (n.hostname, out)
        assert served(env, n)["serves_our_certificate"], n.name
    served_sha = admin(env, "SELECT cert_sha256 FROM stats_double_tls").strip()
    code, out = env.exec("proxysql", ["openssl", "x509", "-in", CERT_DIR + "/server/server.crt", "-noout",
                                      "-fingerprint", "-sha256"])
    assert served_sha == out.strip().split("=")[1].replace(":", "").lower()
    primary = mariadb_nodes(env)[0]
    sql(env, primary, "CREATE DATABASE IF NOT EXISTS mmy_after_new_ca")
    for n in mariadb_nodes(env)[1:]:
        wait_for(lambda n=n: "mmy_after_new_ca" in sql(env, n, "SHOW DATABASES"), 60,
                     f"{n.name} to apply a change after the new CA")
        fields = replica_fields(env, n)
        assert fields["Slave_IO_Running"] == "Yes" and fields["Master_SSL_Allowed"] == "Yes", fields
    sql(env, primary, "DROP DATABASE mmy_after_new_ca")


def test_uninstall_restores_files_and_removes_certificates(sim, installed):
    env = sim.env
    results = sim.session(lambda s: s.uninstall())
    assert [g for g, _ in results] == ["proxy", "sqldb"]
    assert all(r.ok for _, r in results), [r.error for _, r in results]
    assert proxysql_snapshot(env) == installed["proxysql"]
    assert users(env) == installed["users"]
    assert len(mariadb_nodes(env)) == 3  # primary, replica, the replica added by scale-out
    for n in mariadb_nodes(env):
        assert files_of(env, n) == installed["files"][n.name], n.name
        code, out = env.exec(n.name, ["bash", "-c", f"ls /etc/mysql/conf.d/ssl-config.cnf 2>&1; ls -A {CERT_DIR} "
                                      "2>/dev/null; ls /usr/local/sbin/dbtls-agent 2>&1"])
        assert out.count("No such file") == 2 and "server" not in out.split() and "ca" not in out.split(), out
        code, out = client(env, n.hostname, "SELECT 1", tls=False)
        assert code == 0, (n.hostname, out)  # require_secure_transport is off again
    # Replication is back before uninstall returned, without waiting for the replicas' retry timer.
    for n in mariadb_nodes(env)[1:]:
        fields = replica_fields(env, n)
        assert fields["Slave_IO_Running"] == "Yes" and fields["Slave_SQL_Running"] == "Yes", (n.name, fields)
    code, out = env.exec("proxysql", ["bash", "-c", f"ls -A {CERT_DIR} 2>/dev/null; ls /usr/local/sbin/dbtls-agent 2>&1"])
    assert "server" not in out.split() and "No such file" in out, out
