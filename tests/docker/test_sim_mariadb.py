"""The simulated MySQL-family platform: real MariaDB primary and replica, the ProxySQL admin double."""

EXPECTED = {"bullseye": "10.5", "bookworm": "10.11", "trixie": "11.8"}


def mariadb(env, host, sql, user="root", password=None, port=3306):
    pw = env.secrets["MYSQL_ROOT_PASSWORD"] if password is None else password
    return env.exec("client", ["mariadb", f"--host={host}", f"--port={port}", f"--user={user}",
                               "--connect-timeout=10", "--skip-ssl", "--batch", "--skip-column-names",
                               "-e", sql], env={"MYSQL_PWD": pw})


def test_primary_and_replica_answer_with_the_release_version(mariadb_cluster):
    for node in [n for n in mariadb_cluster.nodes if n.role == "mariadb"]:
        code, out = mariadb(mariadb_cluster, node.hostname, "SELECT VERSION()")
        assert code == 0, out
        assert out.startswith(EXPECTED[mariadb_cluster.release]), out


def test_replica_follows_the_primary(mariadb_cluster):
    code, out = mariadb_cluster.exec(mariadb_cluster.node("mariadb", 1).name,
                                     ["mariadb", "-uroot", "-e", "SHOW SLAVE STATUS\\G"])
    assert "Slave_IO_Running: Yes" in out and "Slave_SQL_Running: Yes" in out, out
    code, out = mariadb(mariadb_cluster, "node101", "CREATE DATABASE IF NOT EXISTS simcheck")
    assert code == 0, out
    # Replication is asynchronous: poll with a deadline for the schema to arrive.
    from dbtls.sim.cluster import wait_until
    wait_until(lambda: "simcheck" in mariadb(mariadb_cluster, "node102", "SHOW DATABASES")[1], 60,
               "the replica to apply the primary's change")


def test_platform_users_exist(mariadb_cluster):
    code, out = mariadb(mariadb_cluster, "node101", "SELECT User FROM mysql.user ORDER BY User")
    users = out.split()
    assert {"root", mariadb_cluster.secrets["APP_USER"], mariadb_cluster.secrets["REPLICA_USER"]} <= set(users)
    code, out = mariadb(mariadb_cluster, "node101", "SELECT 1", password="wrong")
    assert code != 0 and "Access denied" in out


def test_my_cnf_includes_conf_d(mariadb_cluster):
    code, out = mariadb_cluster.exec(mariadb_cluster.node("mariadb").name, ["cat", "/etc/my.cnf"])
    assert "!includedir /etc/mysql/conf.d/" in out
    code, out = mariadb_cluster.exec(mariadb_cluster.node("mariadb").name, ["cat", "/etc/jelastic/metainf.conf"])
    assert "COMPUTE_TYPE=mariadb" in out


def admin(env, sql, password="admin"):
    """Like the platform's scripts, talk to ProxySQL's admin port from the ProxySQL node itself."""
    return env.exec("proxysql", ["mariadb", "--skip-ssl", "-h127.0.0.1", "-P6032", "-uadmin", "--batch",
                                 "--skip-column-names", "-e", sql], env={"MYSQL_PWD": password})


def test_proxysql_admin_double_answers_on_6032_with_the_backends(mariadb_cluster):
    code, out = admin(mariadb_cluster, "SELECT hostgroup_id, hostname, port, use_ssl FROM runtime_mysql_servers "
                                       "ORDER BY hostgroup_id, hostname")
    assert code == 0, out
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert rows == [["10", "node101", "3306", "0"], ["11", "node102", "3306", "0"]]
    code, out = admin(mariadb_cluster, "SELECT variable_value FROM global_variables "
                                       "WHERE variable_name = 'mysql-have_ssl'")
    assert (code, out.strip()) == (0, "false")
    code, out = admin(mariadb_cluster, "SELECT @@version_comment")
    assert "TEST DOUBLE" in out, out
    code, out = admin(mariadb_cluster, "SELECT 1", password="wrong")
    assert code != 0 and "Access denied" in out


def test_proxysql_admin_user_is_refused_from_other_hosts(mariadb_cluster):
    code, out = mariadb(mariadb_cluster, mariadb_cluster.node("proxysql").hostname, "SELECT 1",
                        user="admin", password="admin", port=6032)
    assert code != 0 and "locally" in out, out
