"""Server flavour/version parsing and the restart-vs-reload decisions that follow from them."""

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql import flavor as mf

# Captured from MariaDB 10.11.19 (Debian 12) with a replica pointing at a closed port.
MARIADB_SLAVE_STATUS_VERTICAL = '*************************** 1. row ***************************\n                Slave_IO_State: Connecting to master\n                   Master_Host: 127.0.0.1\n                   Master_User: repl\n                   Master_Port: 1\n                 Connect_Retry: 1\n               Master_Log_File: \n           Read_Master_Log_Pos: 4\n                Relay_Log_File: pid-relay-bin.000001\n                 Relay_Log_Pos: 4\n         Relay_Master_Log_File: \n              Slave_IO_Running: Connecting\n             Slave_SQL_Running: Yes\n               Replicate_Do_DB: \n           Replicate_Ignore_DB: \n            Replicate_Do_Table: \n        Replicate_Ignore_Table: \n       Replicate_Wild_Do_Table: \n   Replicate_Wild_Ignore_Table: \n                    Last_Errno: 0\n                    Last_Error: \n                  Skip_Counter: 0\n           Exec_Master_Log_Pos: 4\n               Relay_Log_Space: 256\n               Until_Condition: None\n                Until_Log_File: \n                 Until_Log_Pos: 0\n            Master_SSL_Allowed: Yes\n            Master_SSL_CA_File: /x/root.crt\n            Master_SSL_CA_Path: \n               Master_SSL_Cert: \n             Master_SSL_Cipher: \n                Master_SSL_Key: \n         Seconds_Behind_Master: NULL\n Master_SSL_Verify_Server_Cert: No\n                 Last_IO_Errno: 2003\n                 Last_IO_Error: error connecting to master \'repl@127.0.0.1:1\' - retry-time: 1  maximum-retries: 100000  message: Can\'t connect to server on \'127.0.0.1\' (111 "Connection refused")\n                Last_SQL_Errno: 0\n                Last_SQL_Error: \n   Replicate_Ignore_Server_Ids: \n              Master_Server_Id: 0\n                Master_SSL_Crl: \n            Master_SSL_Crlpath: \n                    Using_Gtid: Slave_Pos\n                   Gtid_IO_Pos: \n       Replicate_Do_Domain_Ids: \n   Replicate_Ignore_Domain_Ids: \n                 Parallel_Mode: optimistic\n                     SQL_Delay: 0\n           SQL_Remaining_Delay: NULL\n       Slave_SQL_Running_State: Slave has read all relay log; waiting for more updates\n              Slave_DDL_Groups: 0\nSlave_Non_Transactional_Groups: 0\n    Slave_Transactional_Groups: 0\n          Replicate_Rewrite_DB: \n'

MARIADB_REPLICA_STATUS_BATCH = 'Slave_IO_State\tMaster_Host\tMaster_User\tMaster_Port\tConnect_Retry\tMaster_Log_File\tRead_Master_Log_Pos\tRelay_Log_File\tRelay_Log_Pos\tRelay_Master_Log_File\tSlave_IO_Running\tSlave_SQL_Running\tReplicate_Do_DB\tReplicate_Ignore_DB\tReplicate_Do_Table\tReplicate_Ignore_Table\tReplicate_Wild_Do_Table\tReplicate_Wild_Ignore_Table\tLast_Errno\tLast_Error\tSkip_Counter\tExec_Master_Log_Pos\tRelay_Log_Space\tUntil_Condition\tUntil_Log_File\tUntil_Log_Pos\tMaster_SSL_Allowed\tMaster_SSL_CA_File\tMaster_SSL_CA_Path\tMaster_SSL_Cert\tMaster_SSL_Cipher\tMaster_SSL_Key\tSeconds_Behind_Master\tMaster_SSL_Verify_Server_Cert\tLast_IO_Errno\tLast_IO_Error\tLast_SQL_Errno\tLast_SQL_Error\tReplicate_Ignore_Server_Ids\tMaster_Server_Id\tMaster_SSL_Crl\tMaster_SSL_Crlpath\tUsing_Gtid\tGtid_IO_Pos\tReplicate_Do_Domain_Ids\tReplicate_Ignore_Domain_Ids\tParallel_Mode\tSQL_Delay\tSQL_Remaining_Delay\tSlave_SQL_Running_State\tSlave_DDL_Groups\tSlave_Non_Transactional_Groups\tSlave_Transactional_Groups\tReplicate_Rewrite_DB\nConnecting to master\t127.0.0.1\trepl\t1\t1\t\t4\tpid-relay-bin.000001\t4\t\tConnecting\tYes\t\t\t\t\t\t\t0\t\t0\t4\t256\tNone\t\t0\tYes\t/x/root.crt\t\t\t\t\tNULL\tNo\t2003\terror connecting to master \'repl@127.0.0.1:1\' - retry-time: 1  maximum-retries: 100000  message: Can\'t connect to server on \'127.0.0.1\' (111 "Connection refused")\t0\t\t\t0\t\t\tSlave_Pos\t\t\t\toptimistic\t0\tNULL\tSlave has read all relay log; waiting for more updates\t0\t0\t0\t\n'

MYSQL_84_VERTICAL = """*************************** 1. row ***************************
             Replica_IO_State: Waiting for source to send event
                  Source_Host: node2
           Replica_IO_Running: Yes
          Replica_SQL_Running: Yes
           Source_SSL_Allowed: Yes
 Source_SSL_Verify_Server_Cert: Yes
                Last_IO_Error:
                 Channel_Name:
*************************** 2. row ***************************
                  Source_Host: node3
           Replica_IO_Running: Yes
          Replica_SQL_Running: No
           Source_SSL_Allowed: No
                Last_IO_Error:
                 Channel_Name: ch2
"""


@pytest.mark.parametrize("output, flavor, version", [
    ("10.11.6-MariaDB-0+deb12u1\tDebian 12\n", "mariadb", (10, 11, 6)),
    ("11.4.2-MariaDB\tmariadb.org binary distribution\n", "mariadb", (11, 4, 2)),
    ("5.5.5-10.3.39-MariaDB\tMariaDB Server\n", "mariadb", (10, 3, 39)),
    ("10.6.16-MariaDB-log\tMariaDB Server\n", "mariadb", (10, 6, 16)),
    ("8.0.36\tMySQL Community Server - GPL\n", "mysql", (8, 0, 36)),
    ("8.4.0\tMySQL Community Server - GPL\n", "mysql", (8, 4, 0)),
    ("5.7.44-log\tMySQL Community Server (GPL)\n", "mysql", (5, 7, 44)),
    ("8.0.36-28\tPercona Server (GPL), Release 28, Revision 47601f19\n", "percona", (8, 0, 36)),
    ("8.0.35-27.1\tPercona XtraDB Cluster (GPL), Release rel27, Revision 84d9464, WSREP version 26.1.4.3\n",
     "percona", (8, 0, 35)),
])
def test_parse_version_query(output, flavor, version):
    assert mf.parse_version_query(output) == (flavor, version)


@pytest.mark.parametrize("line, flavor, version", [
    ("/usr/sbin/mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)",
     "mariadb", (10, 11, 6)),
    ("/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)", "mysql", (8, 0, 36)),
    ("mysqld  Ver 8.0.36-28 for Linux on x86_64 (Percona Server (GPL), Release 28, Revision 47601f19)",
     "percona", (8, 0, 36)),
    ("mysqld  Ver 5.7.44 for Linux on x86_64 (MySQL Community Server (GPL))", "mysql", (5, 7, 44)),
    ("mysql  Ver 15.1 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64) using  EditLine wrapper",
     "mariadb", (10, 11, 19)),
    ("mariadb from 11.4.2-MariaDB, client 15.2 for Linux (x86_64) using readline 5.1", "mariadb", (11, 4, 2)),
    ("/usr/sbin/mariadbd  Ver 11.8.9-MariaDB-0+deb13u1 from Debian-log for debian-linux-gnu on x86_64", "mariadb",
     (11, 8, 9)),
])
def test_parse_version_line(line, flavor, version):
    assert mf.parse_version_line(line + "\n") == (flavor, version)


@pytest.mark.parametrize("bad", ["", "\n", "garbage\tnothing"])
def test_parse_version_query_refuses(bad):
    with pytest.raises(AgentError):
        mf.parse_version_query(bad)


def test_parse_version_line_refuses():
    with pytest.raises(AgentError):
        mf.parse_version_line("command not found")


# flavor, version, first enable needs restart, swap statement, live require_secure_transport, persist
DECISIONS = [
    ("mariadb", (10, 3, 39), True, None, False, False),
    ("mariadb", (10, 4, 1), True, "FLUSH SSL", False, False),
    ("mariadb", (10, 5, 1), True, "FLUSH SSL", False, False),
    ("mariadb", (10, 5, 2), True, "FLUSH SSL", True, False),
    ("mariadb", (10, 11, 6), True, "FLUSH SSL", True, False),
    ("mariadb", (11, 4, 2), True, "FLUSH SSL", True, False),
    ("mysql", (5, 7, 7), True, None, False, False),
    ("mysql", (5, 7, 44), True, None, True, False),
    ("mysql", (8, 0, 15), True, None, True, True),
    ("mysql", (8, 0, 16), False, "ALTER INSTANCE RELOAD TLS", True, True),
    ("mysql", (8, 4, 0), False, "ALTER INSTANCE RELOAD TLS", True, True),
    ("percona", (5, 7, 44), True, None, True, False),
    ("percona", (8, 0, 36), False, "ALTER INSTANCE RELOAD TLS", True, True),
]


@pytest.mark.parametrize("flavor, version, restart, swap, live_rst, persist", DECISIONS)
def test_decisions(flavor, version, restart, swap, live_rst, persist):
    assert mf.first_enable_needs_restart(flavor, version) is restart
    assert mf.cert_swap_statement(flavor, version) == swap
    assert mf.can_set_require_secure_transport_live(flavor, version) is live_rst
    assert mf.has_set_persist(flavor, version) is persist
    if persist and not restart:
        assert mf.persist_statements(flavor, version, "/c", "/s", "/k")[-1] == "ALTER INSTANCE RELOAD TLS"
    if restart:
        with pytest.raises(AgentError):
            mf.persist_statements(flavor, version, "/c", "/s", "/k")


def test_unknown_flavor():
    with pytest.raises(AgentError, match="unknown MySQL flavor"):
        mf.cert_swap_statement("postgres", (15, 0, 0))


def test_persist_statements_text():
    assert mf.persist_statements("mysql", (8, 0, 36), "/k/root.crt", "/k/server.crt", "/k/it's.key",
                                 cipher="ECDHE-RSA-AES128-GCM-SHA256", tls_versions=["TLSv1.2", "TLSv1.3"]) == [
        "SET PERSIST ssl_ca = '/k/root.crt'",
        "SET PERSIST ssl_cert = '/k/server.crt'",
        "SET PERSIST ssl_key = '/k/it''s.key'",
        "SET PERSIST ssl_cipher = 'ECDHE-RSA-AES128-GCM-SHA256'",
        "SET PERSIST tls_version = 'TLSv1.2,TLSv1.3'",
        "ALTER INSTANCE RELOAD TLS",
    ]


def test_restore_tls_statements():
    snapshot = {"ssl_ca": (None, None), "ssl_cert": ("server-cert.pem", None), "ssl_key": ("/u/key.pem", "/u/key.pem")}
    assert mf.restore_tls_statements(snapshot) == [
        "RESET PERSIST IF EXISTS ssl_ca",
        "SET GLOBAL ssl_ca = DEFAULT",
        "RESET PERSIST IF EXISTS ssl_cert",
        "SET GLOBAL ssl_cert = 'server-cert.pem'",
        "SET PERSIST ssl_key = '/u/key.pem'",
        "ALTER INSTANCE RELOAD TLS",
    ]
    assert "performance_schema.persisted_variables" in mf.tls_snapshot_query()


@pytest.mark.parametrize("flavor, version, on, statement", [
    ("mysql", (8, 0, 36), True, "SET PERSIST require_secure_transport = ON"),
    ("mysql", (5, 7, 44), True, "SET GLOBAL require_secure_transport = ON"),
    ("mariadb", (10, 11, 6), True, "SET GLOBAL require_secure_transport = ON"),
    ("mariadb", (10, 11, 6), False, "SET GLOBAL require_secure_transport = OFF"),
])
def test_require_secure_transport_statement(flavor, version, on, statement):
    assert mf.require_secure_transport_statement(flavor, version, on) == statement


def test_require_secure_transport_statement_refuses_old_mariadb():
    with pytest.raises(AgentError, match="restart"):
        mf.require_secure_transport_statement("mariadb", (10, 4, 30), True)


CA = "/var/lib/jelastic/keys/SSL-TLS/server/root.crt"


@pytest.mark.parametrize("flavor, version, expected", [
    ("mariadb", (10, 4, 30), ["STOP SLAVE",
                              f"CHANGE MASTER TO MASTER_SSL = 1, MASTER_SSL_CA = '{CA}', MASTER_SSL_VERIFY_SERVER_CERT = 0",
                              "START SLAVE"]),
    ("mariadb", (10, 11, 6), ["STOP REPLICA",
                              f"CHANGE MASTER TO MASTER_SSL = 1, MASTER_SSL_CA = '{CA}', MASTER_SSL_VERIFY_SERVER_CERT = 0",
                              "START REPLICA"]),
    ("mysql", (5, 7, 44), ["STOP SLAVE",
                           f"CHANGE MASTER TO MASTER_SSL = 1, MASTER_SSL_CA = '{CA}', MASTER_SSL_VERIFY_SERVER_CERT = 0",
                           "START SLAVE"]),
    ("mysql", (8, 0, 22), ["STOP REPLICA",
                           f"CHANGE MASTER TO MASTER_SSL = 1, MASTER_SSL_CA = '{CA}', MASTER_SSL_VERIFY_SERVER_CERT = 0",
                           "START REPLICA"]),
    ("percona", (8, 0, 23), ["STOP REPLICA",
                             f"CHANGE REPLICATION SOURCE TO SOURCE_SSL = 1, SOURCE_SSL_CA = '{CA}', "
                             "SOURCE_SSL_VERIFY_SERVER_CERT = 0",
                             "START REPLICA"]),
    ("mysql", (8, 4, 0), ["STOP REPLICA",
                          f"CHANGE REPLICATION SOURCE TO SOURCE_SSL = 1, SOURCE_SSL_CA = '{CA}', "
                          "SOURCE_SSL_VERIFY_SERVER_CERT = 0",
                          "START REPLICA"]),
])
def test_replica_ssl_statements(flavor, version, expected):
    assert mf.replica_ssl_statements(flavor, version, CA) == expected


def test_replica_ssl_statements_options():
    assert mf.replica_ssl_statements("mysql", (8, 4, 0), CA, verify_server_cert=True, restart_threads=False) == [
        f"CHANGE REPLICATION SOURCE TO SOURCE_SSL = 1, SOURCE_SSL_CA = '{CA}', SOURCE_SSL_VERIFY_SERVER_CERT = 1"]
    assert mf.replica_ssl_statements("mariadb", (10, 11, 6), CA, verify_server_cert=True, enable=False) == [
        "STOP REPLICA", "CHANGE MASTER TO MASTER_SSL = 0, MASTER_SSL_VERIFY_SERVER_CERT = 0", "START REPLICA"]


def test_replica_ssl_restore_statements_put_back_exactly():
    # MariaDB 11.x default channel: TLS on, no CA file, verification on (fingerprint of a self-signed source)
    assert mf.replica_ssl_restore_statements("mariadb", (11, 8, 3), True, "", True) == [
        "STOP REPLICA", "CHANGE MASTER TO MASTER_SSL = 1, MASTER_SSL_CA = '', MASTER_SSL_VERIFY_SERVER_CERT = 1",
        "START REPLICA"]
    assert mf.replica_ssl_restore_statements("mariadb", (10, 11, 6), False, "", False, restart_threads=False) == [
        "CHANGE MASTER TO MASTER_SSL = 0, MASTER_SSL_CA = '', MASTER_SSL_VERIFY_SERVER_CERT = 0"]
    assert mf.replica_ssl_restore_statements("mysql", (8, 4, 0), True, "/etc/o'ld/ca.pem", False) == [
        "STOP REPLICA", "CHANGE REPLICATION SOURCE TO SOURCE_SSL = 1, SOURCE_SSL_CA = '/etc/o''ld/ca.pem', "
        "SOURCE_SSL_VERIFY_SERVER_CERT = 0", "START REPLICA"]
    assert mf.replica_ssl_restore_statements("mysql", (5, 7, 44), False, None, False) == [
        "STOP SLAVE", "CHANGE MASTER TO MASTER_SSL = 0, MASTER_SSL_VERIFY_SERVER_CERT = 0", "START SLAVE"]


def test_replica_ssl_settings_record_what_enable_changes():
    (status,) = mf.parse_replica_status(MARIADB_SLAVE_STATUS_VERTICAL)
    assert status.ssl_settings() == {"ssl_allowed": "Yes", "ca_file": "/x/root.crt", "verify": "No"}
    first, second = mf.parse_replica_status(MYSQL_84_VERTICAL)
    assert first.ssl_settings()["verify"] == "Yes" and second.ssl_settings()["ssl_allowed"] == "No"


@pytest.mark.parametrize("flavor, version, query", [
    ("mariadb", (10, 4, 30), "SHOW SLAVE STATUS"),
    ("mariadb", (10, 5, 1), "SHOW REPLICA STATUS"),
    ("mysql", (8, 0, 21), "SHOW SLAVE STATUS"),
    ("mysql", (8, 0, 22), "SHOW REPLICA STATUS"),
    ("percona", (8, 4, 0), "SHOW REPLICA STATUS"),
])
def test_replica_status_query(flavor, version, query):
    assert mf.replica_status_query(flavor, version) == query


@pytest.mark.parametrize("output", [MARIADB_SLAVE_STATUS_VERTICAL, MARIADB_REPLICA_STATUS_BATCH])
def test_parse_real_mariadb_status(output):
    (status,) = mf.parse_replica_status(output)
    assert (status.ssl_allowed, status.io_running, status.sql_running) == ("Yes", "Connecting", "Yes")
    assert status.verify_server_cert == "No" and status.source_host == "127.0.0.1"
    assert not status.uses_tls
    problems = status.problems()
    assert len(problems) == 1 and problems[0].startswith("replication IO thread is Connecting: error connecting")


def test_parse_mysql_replica_spellings_and_channels():
    first, second = mf.parse_replica_status(MYSQL_84_VERTICAL)
    assert first.uses_tls and first.problems() == [] and first.verify_server_cert == "Yes"
    assert second.channel == "ch2" and not second.uses_tls
    assert second.problems() == [
        "replication channel 'ch2' is not configured for TLS (SSL_Allowed=No)",
        "replication channel 'ch2' SQL thread is No",
    ]


def test_parse_no_replica():
    assert mf.parse_replica_status("") == []
    assert mf.parse_status_rows("Slave_IO_Running\tMaster_SSL_Allowed\n") == []


def test_parse_status_rows_batch_escapes():
    rows = mf.parse_status_rows("Last_IO_Error\tMaster_SSL_Allowed\nbad\\tthing\\nhere\tYes\n")
    assert rows == [{"Last_IO_Error": "bad\tthing\nhere", "Master_SSL_Allowed": "Yes"}]
