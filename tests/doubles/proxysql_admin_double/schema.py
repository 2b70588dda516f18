"""Table definitions and default values of the emulated ProxySQL 2.5 admin interface.

Column names, types, CHECK constraints and DEFAULTs follow ProxySQL 2.x
(include/ProxySQL_Admin_Tables_Definitions.h and MySQL_HostGroups_Manager.h in
sysown/proxysql). Only the tables dbtls needs are modelled.
"""

EMULATED_PROXYSQL_VERSION = "2.5.5"

# Body of each CREATE TABLE, without the "CREATE TABLE name" prefix.
TABLE_BODIES = {
    "global_variables": (
        "(variable_name VARCHAR NOT NULL PRIMARY KEY , variable_value VARCHAR NOT NULL)"
    ),
    "mysql_servers": (
        "(hostgroup_id INT CHECK (hostgroup_id>=0) NOT NULL DEFAULT 0 ,"
        " hostname VARCHAR NOT NULL ,"
        " port INT CHECK (port >= 0 AND port <= 65535) NOT NULL DEFAULT 3306 ,"
        " gtid_port INT CHECK ((gtid_port <> port OR gtid_port=0) AND gtid_port >= 0"
        " AND gtid_port <= 65535) NOT NULL DEFAULT 0 ,"
        " status VARCHAR CHECK (UPPER(status) IN ('ONLINE','SHUNNED','OFFLINE_SOFT',"
        " 'OFFLINE_HARD')) NOT NULL DEFAULT 'ONLINE' ,"
        " weight INT CHECK (weight >= 0 AND weight <=10000000) NOT NULL DEFAULT 1 ,"
        " compression INT CHECK (compression IN(0,1)) NOT NULL DEFAULT 0 ,"
        " max_connections INT CHECK (max_connections >=0) NOT NULL DEFAULT 1000 ,"
        " max_replication_lag INT CHECK (max_replication_lag >= 0 AND"
        " max_replication_lag <= 126144000) NOT NULL DEFAULT 0 ,"
        " use_ssl INT CHECK (use_ssl IN(0,1)) NOT NULL DEFAULT 0 ,"
        " max_latency_ms INT UNSIGNED CHECK (max_latency_ms>=0) NOT NULL DEFAULT 0 ,"
        " comment VARCHAR NOT NULL DEFAULT '' ,"
        " PRIMARY KEY (hostgroup_id, hostname, port) )"
    ),
    "mysql_users": (
        "(username VARCHAR NOT NULL , password VARCHAR ,"
        " active INT CHECK (active IN (0,1)) NOT NULL DEFAULT 1 ,"
        " use_ssl INT CHECK (use_ssl IN (0,1)) NOT NULL DEFAULT 0 ,"
        " default_hostgroup INT NOT NULL DEFAULT 0 , default_schema VARCHAR ,"
        " schema_locked INT CHECK (schema_locked IN (0,1)) NOT NULL DEFAULT 0 ,"
        " transaction_persistent INT CHECK (transaction_persistent IN (0,1)) NOT NULL DEFAULT 1 ,"
        " fast_forward INT CHECK (fast_forward IN (0,1)) NOT NULL DEFAULT 0 ,"
        " backend INT CHECK (backend IN (0,1)) NOT NULL DEFAULT 1 ,"
        " frontend INT CHECK (frontend IN (0,1)) NOT NULL DEFAULT 1 ,"
        " max_connections INT CHECK (max_connections >=0) NOT NULL DEFAULT 10000 ,"
        " attributes VARCHAR CHECK (JSON_VALID(attributes) OR attributes = '') NOT NULL DEFAULT '' ,"
        " comment VARCHAR NOT NULL DEFAULT '' ,"
        " PRIMARY KEY (username, backend) , UNIQUE (username, frontend))"
    ),
    "mysql_replication_hostgroups": (
        "(writer_hostgroup INT CHECK (writer_hostgroup>=0) NOT NULL PRIMARY KEY ,"
        " reader_hostgroup INT NOT NULL CHECK (reader_hostgroup<>writer_hostgroup AND"
        " reader_hostgroup>=0) ,"
        " check_type VARCHAR CHECK (LOWER(check_type) IN ('read_only','innodb_read_only',"
        "'super_read_only','read_only|innodb_read_only','read_only&innodb_read_only'))"
        " NOT NULL DEFAULT 'read_only' ,"
        " comment VARCHAR NOT NULL DEFAULT '' , UNIQUE (reader_hostgroup))"
    ),
}

# Tables that exist in memory (main), as runtime_* twins and in disk.*.
CONFIG_TABLES = tuple(TABLE_BODIES)

STATS_TABLES = {
    # ProxySQL's real table, rebuilt from runtime_mysql_servers whenever it is read. The double has
    # no backend connections: ConnUsed (and MaxConnUsed) come from main.double_busy_connections,
    # every other counter is 0.
    "stats_mysql_connection_pool": (
        "(hostgroup INT , srv_host VARCHAR , srv_port INT , status VARCHAR , ConnUsed INT ,"
        " ConnFree INT , ConnOK INT , ConnERR INT , MaxConnUsed INT , Queries INT ,"
        " Queries_GTID_sync INT , Bytes_data_sent INT , Bytes_data_recv INT , Latency_us INT)"
    ),
    # NOT a ProxySQL table: every status a mysql_servers row had in the runtime and disk layers,
    # appended when it changes (epoch seconds), so tests can see a backend's OFFLINE_SOFT/ONLINE
    # history. A row that disappears from a layer gets status ''.
    "stats_double_status_history": (
        "(seq INTEGER PRIMARY KEY , at REAL NOT NULL , layer VARCHAR NOT NULL ,"
        " hostgroup_id INT NOT NULL , hostname VARCHAR NOT NULL , port INT NOT NULL ,"
        " status VARCHAR NOT NULL)"
    ),
    # NOT a ProxySQL table: the double's record of the frontend TLS context it "runs".
    "stats_double_tls": (
        "(loaded INT NOT NULL , reloads INT NOT NULL , cert_sha256 VARCHAR ,"
        " ca_sha256 VARCHAR , pubkey_sha256 VARCHAR , cert_subject VARCHAR ,"
        " cert_issuer VARCHAR , cert_not_after VARCHAR , loaded_at INT ,"
        " last_error VARCHAR NOT NULL DEFAULT '')"
    ),
}

# NOT ProxySQL tables, in main and writable: what tests tell the double to pretend.
DOUBLE_TABLES = {
    # Connections in use to a backend (every hostgroup it is in): ConnUsed shows conn_used while the
    # runtime status is ONLINE; from the moment it turns OFFLINE_SOFT the in-flight work needs drain_ms
    # more milliseconds (-1: never ends), then ConnUsed is 0. OFFLINE_HARD and SHUNNED: 0 at once.
    "double_busy_connections": (
        "(srv_host VARCHAR NOT NULL , srv_port INT NOT NULL DEFAULT 3306 ,"
        " conn_used INT CHECK (conn_used >= 0) NOT NULL DEFAULT 0 ,"
        " drain_ms INT NOT NULL DEFAULT 0 , PRIMARY KEY (srv_host, srv_port))"
    ),
}

# "LOAD/SAVE <module> ..." -> (tables, variable prefix or None)
MODULES = {
    "MYSQL VARIABLES": (("global_variables",), "mysql-"),
    "ADMIN VARIABLES": (("global_variables",), "admin-"),
    "MYSQL SERVERS": (("mysql_servers", "mysql_replication_hostgroups"), None),
    "MYSQL USERS": (("mysql_users",), None),
}

# ProxySQL 2.5 defaults (lib/MySQL_Thread.cpp, lib/ProxySQL_Admin.cpp). Not exhaustive.
DEFAULT_VARIABLES = {
    "admin-admin_credentials": "admin:admin",
    "admin-stats_credentials": "stats:stats",
    "admin-mysql_ifaces": "0.0.0.0:6032",
    "admin-read_only": "false",
    "admin-hash_passwords": "true",
    "admin-version": EMULATED_PROXYSQL_VERSION,
    "admin-refresh_interval": "2000",
    "admin-checksum_mysql_servers": "true",
    "admin-checksum_mysql_users": "true",
    "admin-checksum_mysql_variables": "true",
    "admin-checksum_mysql_query_rules": "true",
    "admin-checksum_admin_variables": "true",
    "admin-cluster_username": "",
    "admin-cluster_password": "",
    "admin-web_enabled": "false",
    "admin-web_port": "6080",
    "admin-restapi_enabled": "false",
    "admin-restapi_port": "6070",
    "mysql-interfaces": "0.0.0.0:6033",
    "mysql-threads": "4",
    "mysql-max_connections": "2048",
    "mysql-default_schema": "information_schema",
    "mysql-server_version": "5.5.30",
    "mysql-have_ssl": "false",
    "mysql-have_compress": "true",
    "mysql-ssl_p2s_ca": "",
    "mysql-ssl_p2s_capath": "",
    "mysql-ssl_p2s_cert": "",
    "mysql-ssl_p2s_key": "",
    "mysql-ssl_p2s_cipher": "",
    "mysql-ssl_p2s_crl": "",
    "mysql-ssl_p2s_crlpath": "",
    "mysql-monitor_enabled": "true",
    "mysql-monitor_username": "monitor",
    "mysql-monitor_password": "monitor",
    "mysql-monitor_connect_interval": "60000",
    "mysql-monitor_connect_timeout": "600",
    "mysql-monitor_ping_interval": "10000",
    "mysql-monitor_ping_timeout": "1000",
    "mysql-monitor_read_only_interval": "1500",
    "mysql-monitor_read_only_timeout": "500",
    "mysql-monitor_writer_is_also_reader": "true",
    "mysql-monitor_replication_lag_interval": "10000",
    "mysql-connect_timeout_server": "3000",
    "mysql-connect_retries_on_failure": "10",
    "mysql-default_query_timeout": "36000000",
    "mysql-max_allowed_packet": "67108864",
    "mysql-poll_timeout": "2000",
    "mysql-ping_interval_server_msec": "120000",
    "mysql-ping_timeout_server": "500",
    "mysql-multiplexing": "true",
    "mysql-connection_max_age_ms": "0",
    "mysql-commands_stats": "true",
    "mysql-sessions_sort": "true",
    "mysql-query_retries_on_failure": "1",
    "mysql-stacksize": "1048576",
    "mysql-server_capabilities": "569899",
    "mysql-eventslog_filename": "",
}


def _kind(value):
    if value in ("true", "false"):
        return "bool"
    if value.isdigit():
        return "int"
    return "str"


VARIABLE_KINDS = {name: _kind(value) for name, value in DEFAULT_VARIABLES.items()}


def normalize_variable(name, value):
    """Value ProxySQL would accept at LOAD ... TO RUNTIME, or None when it rejects it."""
    kind = VARIABLE_KINDS.get(name)
    if kind is None:
        return None
    text = "" if value is None else str(value)
    if kind == "bool":
        low = text.strip().lower()
        if low in ("true", "1"):
            return "true"
        if low in ("false", "0"):
            return "false"
        return None
    if kind == "int":
        stripped = text.strip()
        if stripped.lstrip("-").isdigit():
            return str(int(stripped))
        return None
    return text
