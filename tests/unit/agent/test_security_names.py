"""Pure decisions behind the security fixes: which pool_passwd names, user names and standby
conninfo settings the agent accepts (the docker tests in tests/docker/test_security_*.py play the
hostile side on real nodes)."""

import pytest

from dbtls_agent.commands import usercert
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.pgpool import poolkey
from dbtls_agent.roles.postgres import standbytls

CONF = "/etc/pgpool-II/pgpool.conf"


@pytest.mark.parametrize("value,name", [
    (None, "pool_passwd"), ("", "pool_passwd"), ("pool_passwd", "pool_passwd"), ("passwords", "passwords"),
    ("/etc/pgpool-II/pool_passwd", "pool_passwd"),
])
def test_pool_passwd_plain_names_in_the_config_folder(value, name):
    assert poolkey.pool_passwd_name(value, CONF) == name


@pytest.mark.parametrize("value", [
    "/etc/profile.d/zz-x.sh", "/usr/local/sbin/dbtls-agent", "../profile.d/x", "sub/pool_passwd", ".", "..",
    "/etc/pgpool-II/../profile.d/x", "/etc/pgpool-II/sub/pool_passwd", "pgpool.conf", "pool_hba.conf", "pcp.conf",
    ".pgpoolkey", "bad\0name",
])
def test_pool_passwd_anything_else_is_refused_in_one_line(value):
    with pytest.raises(AgentError) as info:
        poolkey.pool_passwd_name(value, CONF)
    assert "\n" not in str(info.value) and "nothing was changed" in str(info.value)


@pytest.mark.parametrize("name", ["app", "cron.d", "app_user-2", "a@b", "x%", "A" * 80])
def test_user_names_taken(name):
    assert usercert.check_user_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "-x", "a/b", "../../etc", "a b", "a'b", "A" * 81,
                                  "caf\u00e9"])
def test_user_names_refused_in_one_line(name):
    with pytest.raises(AgentError) as info:
        usercert.check_user_name(name)
    assert "\n" not in str(info.value)


ROOT = "/k/server/root.crt"
PEER = {"cn": "node101-env", "dns": ["node101-env", "node101-env.example.org", "env.example.org"],
        "ips": ["10.0.0.5", "FD00:0:0:0:0:0:0:5"]}


def _decide(conninfo, address, peer=PEER, major=15):
    return standbytls.decide(dict(p.split("=", 1) for p in conninfo.split()), address, peer, major, ROOT)


def test_platform_ip_host_is_checked_as_is_where_libpq_matches_ip_sans():
    assert _decide("host=10.0.0.5 port=5432", "10.0.0.5") == ({"sslmode": "verify-full", "sslrootcert": ROOT}, None)


def test_ip_host_before_15_pins_the_certificate_name_and_keeps_the_route():
    assert _decide("host=10.0.0.5", "10.0.0.5", major=13) == (
        {"sslmode": "verify-full", "sslrootcert": ROOT, "host": "node101-env", "hostaddr": "10.0.0.5"}, None)


def test_short_name_not_in_the_certificate_is_replaced_by_its_cn():
    settings, why = _decide("host=node101", "10.0.0.5")
    assert why is None and settings["host"] == "node101-env" and settings["hostaddr"] == "10.0.0.5"


@pytest.mark.parametrize("host", ["node101-env", "NODE101-env.example.org"])
def test_the_certificate_own_name_is_kept(host):
    assert _decide("host=" + host, "10.0.0.5") == ({"sslmode": "verify-full", "sslrootcert": ROOT}, None)


def test_the_shared_environment_domain_is_never_enough():
    settings, _ = _decide("host=env.example.org", "10.0.0.5")
    assert settings["host"] == "node101-env"  # every node's certificate carries env.example.org


def test_rerun_is_idempotent():
    settings, _ = _decide("host=node101-env hostaddr=10.0.0.5 sslmode=verify-full", "10.0.0.5", major=13)
    assert settings == {"sslmode": "verify-full", "sslrootcert": ROOT}


@pytest.mark.parametrize("conninfo,address,peer", [
    ("host=10.0.0.9", "10.0.0.9", PEER),  # served at an address the certificate does not carry
    ("host=a,b", "10.0.0.5", PEER),
    ("host=/var/run/postgresql", None, PEER),
    ("host=10.0.0.5", "10.0.0.5", None),  # no TLS answer
    ("host=10.0.0.5", "10.0.0.5", {"cn": "x", "dns": [], "ips": ["10.0.0.5"]}),
])
def test_unprovable_cases_keep_verify_ca_and_say_why(conninfo, address, peer):
    settings, why = _decide(conninfo, address, peer, major=13)
    assert settings == {"sslmode": "verify-ca", "sslrootcert": ROOT} and why and "verify-ca" in why


def test_sslmode_of_wal_receiver_conninfo():
    shown = "user=replication password=******** host=node101-env hostaddr=10.0.0.5 sslmode=verify-full sslsni=1"
    assert standbytls.sslmode_of(shown) == "verify-full"
    assert standbytls.sslmode_of("host=x") is None


def test_proxysql_datadir_named_by_a_file_others_can_change_must_not_be_roots(tmp_path):
    import os

    from dbtls_agent.roles.proxysql import role as proxysql

    datadir = tmp_path / "datadir"
    datadir.mkdir()
    cnf = tmp_path / "proxysql.cnf"
    cnf.write_text(f'datadir="{datadir}"\n')
    cnf.chmod(0o644)
    me = (os.geteuid(), os.getegid())
    if os.geteuid() == 0:
        assert proxysql._datadir_owner(str(datadir), str(cnf)) == me  # root chose it: fine
    cnf.chmod(0o666)  # anybody could have named root's folder
    if os.geteuid() == 0:
        with pytest.raises(AgentError, match="belongs to root"):
            proxysql._datadir_owner(str(datadir), str(cnf))
        os.chown(str(datadir), 65534, 65534)  # the account's own folder: its business
        assert proxysql._datadir_owner(str(datadir), str(cnf)) == (65534, 65534)
    with pytest.raises(AgentError, match="does not exist"):
        proxysql._datadir_owner(str(tmp_path / "missing"), None)
