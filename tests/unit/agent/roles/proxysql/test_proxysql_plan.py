"""ProxySQL admin plans: exact statements, and enable -> disable restores the recorded state exactly.

ProxySQL's admin tables are SQLite tables, so the UPDATE statements of a plan are executed against an
in-memory SQLite copy of the relevant tables; LOAD/SAVE/PROXYSQL commands only move data between
ProxySQL's layers and are skipped there.
"""

import sqlite3

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql.client import escape_batch_field
from dbtls_agent.roles.proxysql import plan as pp

CA = "/var/lib/jelastic/keys/SSL-TLS/server/root.crt"


def admin_db():
    """The columns dbtls touches of ProxySQL's global_variables, mysql_servers and mysql_users."""
    db = sqlite3.connect(":memory:")
    db.executescript("""
        CREATE TABLE global_variables (variable_name VARCHAR NOT NULL PRIMARY KEY, variable_value VARCHAR NOT NULL);
        CREATE TABLE mysql_servers (hostgroup_id INT NOT NULL DEFAULT 0, hostname VARCHAR NOT NULL,
            port INT NOT NULL DEFAULT 3306, status VARCHAR NOT NULL DEFAULT 'ONLINE',
            use_ssl INT NOT NULL DEFAULT 0, PRIMARY KEY (hostgroup_id, hostname, port));
        CREATE TABLE mysql_users (username VARCHAR NOT NULL, password VARCHAR, use_ssl INT NOT NULL DEFAULT 0,
            frontend INT NOT NULL DEFAULT 1, backend INT NOT NULL DEFAULT 1, PRIMARY KEY (username, backend));
        INSERT INTO global_variables VALUES ('mysql-have_ssl', 'false'), ('mysql-ssl_p2s_ca', ''),
            ('mysql-ssl_p2s_cert', ''), ('mysql-ssl_p2s_key', ''), ('mysql-threads', '4');
        INSERT INTO mysql_servers (hostgroup_id, hostname, port, use_ssl) VALUES
            (10, 'node1', 3306, 0), (11, 'node2', 3306, 0), (11, 'node3', 3307, 1), (2, 'o''brien', 3306, 0);
        INSERT INTO mysql_users (username, password, use_ssl, frontend, backend) VALUES
            ('user-1', 'x', 0, 1, 1), ('repl-1', 'y', 1, 1, 1), ('ops', 'z', 0, 0, 1);
    """)
    return db


def batch(db, sql):
    """Run a query and print the result the way `mysql --batch --skip-column-names` does."""
    rows = db.execute(sql).fetchall()
    return "".join("\t".join(escape_batch_field(None if v is None else str(v)) for v in row) + "\n" for row in rows)


def apply(db, statements):
    for statement in statements:
        if statement.split()[0] in ("LOAD", "SAVE", "PROXYSQL"):
            continue
        db.execute(statement)


def dump(db):
    return [db.execute("SELECT * FROM " + t + " ORDER BY 1, 2").fetchall()
            for t in ("global_variables", "mysql_servers", "mysql_users")]


def snapshot(db):
    queries = pp.snapshot_queries()
    return pp.parse_snapshot(batch(db, queries["variables"]), batch(db, queries["servers"]), batch(db, queries["users"]))


def test_frontend_files():
    assert pp.FRONTEND_FILES == ("proxysql-ca.pem", "proxysql-cert.pem", "proxysql-key.pem")
    assert pp.frontend_tls_paths() == {"ca": "/var/lib/proxysql/proxysql-ca.pem",
                                       "cert": "/var/lib/proxysql/proxysql-cert.pem",
                                       "key": "/var/lib/proxysql/proxysql-key.pem"}


@pytest.mark.parametrize("output, version", [("2.5.5-10-g195cd61\n", (2, 5, 5)), ("3.0.1-percona-1.1\n", (3, 0, 1)),
                                             ("2.0.18\n", (2, 0, 18))])
def test_parse_version(output, version):
    assert pp.parse_version(output) == version


def test_parse_version_refuses():
    with pytest.raises(AgentError):
        pp.parse_version("")
    assert "admin-version" in pp.version_query()


def test_enable_plan_text():
    plan = pp.enable_plan((2, 5, 5), CA)
    assert plan.statements == [
        f"UPDATE global_variables SET variable_value='{CA}' WHERE variable_name='mysql-ssl_p2s_ca'",
        "LOAD MYSQL VARIABLES TO RUNTIME",
        "UPDATE mysql_servers SET use_ssl=1",
        "LOAD MYSQL SERVERS TO RUNTIME",
        "PROXYSQL RELOAD TLS",
        "UPDATE global_variables SET variable_value='true' WHERE variable_name='mysql-have_ssl'",
        "LOAD MYSQL VARIABLES TO RUNTIME",
        "SAVE MYSQL VARIABLES TO DISK",
        "SAVE MYSQL SERVERS TO DISK",
    ]
    assert not plan.restart_required


@pytest.mark.parametrize("version, restart", [((2, 2, 2), True), ((2, 3, 0), False), ((3, 0, 1), False)])
def test_reload_tls_by_version(version, restart):
    plan = pp.enable_plan(version, CA)
    assert plan.restart_required is restart
    assert ("PROXYSQL RELOAD TLS" in plan.statements) is (not restart)
    assert any("restart" in note for note in plan.notes) is restart


def test_enable_plan_require_tls_and_client_cert():
    plan = pp.enable_plan((2, 6, 0), CA, require_tls=True, backend_cert="/c.crt", backend_key="/c.key")
    assert "UPDATE mysql_users SET use_ssl=1" in plan.statements
    assert plan.statements.index("UPDATE mysql_users SET use_ssl=1") > plan.statements.index("PROXYSQL RELOAD TLS")
    assert plan.statements[-3:] == ["SAVE MYSQL VARIABLES TO DISK", "SAVE MYSQL SERVERS TO DISK", "SAVE MYSQL USERS TO DISK"]
    assert "UPDATE global_variables SET variable_value='/c.key' WHERE variable_name='mysql-ssl_p2s_key'" in plan.statements
    with pytest.raises(AgentError):
        pp.enable_plan((2, 6, 0), CA, backend_cert="/c.crt")


def test_every_load_is_followed_by_save():
    for plan in (pp.enable_plan((2, 5, 5), CA, require_tls=True), pp.disable_plan(pp.Snapshot())):
        loaded = {s.split()[1:3][1] for s in plan.statements if s.startswith("LOAD")}
        saved = {s.split()[1:3][1] for s in plan.statements if s.startswith("SAVE")}
        assert loaded == saved


@pytest.mark.parametrize("require_tls", [False, True])
def test_enable_then_disable_restores_exactly(require_tls):
    db = admin_db()
    before = dump(db)
    recorded = snapshot(db)
    assert recorded.variables == {"mysql-have_ssl": "false", "mysql-ssl_p2s_ca": "", "mysql-ssl_p2s_cert": "",
                                  "mysql-ssl_p2s_key": ""}
    assert (11, "node3", 3307, 1) in recorded.servers and (2, "o'brien", 3306, 0) in recorded.servers
    # the snapshot survives the JSON state file
    recorded = pp.Snapshot.from_dict(recorded.to_dict())

    apply(db, pp.enable_plan((2, 5, 5), CA, require_tls=require_tls).statements)
    assert all(row[4] == 1 for row in db.execute("SELECT * FROM mysql_servers"))  # every port, not only 3306
    queries = pp.verify_queries()
    runtime = {name: batch(db, q.replace("runtime_", "")) for name, q in queries.items()}
    assert pp.check_runtime(runtime["variables"], runtime["servers"], CA, runtime["users"], require_tls) == []

    apply(db, pp.disable_plan(recorded).statements)
    assert dump(db) == before


def test_disable_sets_new_rows_to_default():
    db = admin_db()
    recorded = snapshot(db)
    apply(db, pp.enable_plan((2, 5, 5), CA).statements)
    db.execute("INSERT INTO mysql_servers (hostgroup_id, hostname, port, use_ssl) VALUES (11, 'node9', 3306, 1)")
    apply(db, pp.disable_plan(recorded).statements)
    assert db.execute("SELECT use_ssl FROM mysql_servers WHERE hostname='node9'").fetchone() == (0,)


def test_disable_plan_reload_tls():
    assert "PROXYSQL RELOAD TLS" in pp.disable_plan(pp.Snapshot(), reload_tls_version=(2, 3, 0)).statements
    old = pp.disable_plan(pp.Snapshot(), reload_tls_version=(2, 2, 0))
    assert old.restart_required and "PROXYSQL RELOAD TLS" not in old.statements
    assert "PROXYSQL RELOAD TLS" not in pp.disable_plan(pp.Snapshot()).statements


def test_disable_restores_missing_variable_as_empty():
    plan = pp.disable_plan(pp.Snapshot({"mysql-ssl_p2s_ca": None}))
    assert plan.statements[0] == "UPDATE global_variables SET variable_value='' WHERE variable_name='mysql-ssl_p2s_ca'"


def test_check_runtime_reports_each_problem():
    variables = "mysql-have_ssl\tfalse\nmysql-ssl_p2s_ca\tNULL\n"
    servers = "10\tnode1\t3306\t1\n11\tnode2\t3306\t0\n"
    users = "user-1\t1\t0\n"
    assert pp.check_runtime(variables, servers, CA, users, require_tls=True) == [
        "ProxySQL does not offer TLS to clients: runtime mysql-have_ssl='false'",
        f"ProxySQL backend CA is None, expected '{CA}'",
        "ProxySQL connects to node2:3306 (hostgroup 11) without TLS",
        "ProxySQL user 'user-1' may still log in without TLS",
    ]
    assert pp.check_runtime(variables.replace("false", "true").replace("NULL", CA), servers.replace("\t0\n", "\t1\n"),
                            CA) == []
    assert pp.check_runtime("mysql-have_ssl\ttrue\nmysql-ssl_p2s_ca\t" + CA + "\n", "", CA, require_tls=True) == [
        "runtime_mysql_users was not checked"]


@pytest.mark.parametrize("parser, output", [
    (pp.parse_servers, "10\tnode1\t3306\n"),
    (pp.parse_servers, "ten\tnode1\t3306\t1\n"),
    (pp.parse_variables, "only-one-column\n"),
    (pp.parse_users, "u\tNULL\t1\n"),
])
def test_parsers_refuse_unexpected_rows(parser, output):
    with pytest.raises(AgentError):
        parser(output)


def test_hostname_with_tab_survives_batch_escaping():
    assert pp.parse_servers("10\tweird\\thost\t3306\t1\n") == [(10, "weird\thost", 3306, 1)]
