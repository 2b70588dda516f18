"""pg_hba.conf / pool_hba.conf tokeniser and the hostssl transform."""

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.postgres import hba

PLATFORM = (
    "local   all   all                 trust\n"
    "host    all   all   127.0.0.1/32  trust\n"
    "host    all   all   ::1/128       trust\n"
    "host all all 0.0.0.0/0 md5\n"
    "host replication all 0.0.0.0/0 md5\n"
)


def managed(text):
    return [r for r in hba.rules(text) if r.managed]


def test_platform_defaults_become_hostssl_scram_and_loopback_stays():
    out = hba.enable_hostssl(PLATFORM)
    assert out == (
        "local   all   all                 trust\n"
        "host    all   all   127.0.0.1/32  trust\n"
        "host    all   all   ::1/128       trust\n"
        "# dbtls-original: host all all 0.0.0.0/0 md5\n"
        "hostssl all all 0.0.0.0/0 scram-sha-256  # dbtls-managed\n"
        "# dbtls-original: host replication all 0.0.0.0/0 md5\n"
        "hostssl replication all 0.0.0.0/0 scram-sha-256  # dbtls-managed\n")
    assert hba.disable_hostssl(out) == PLATFORM
    assert hba.plaintext_remote_rules(PLATFORM)[0].lineno == 4
    assert hba.plaintext_remote_rules(out) == []


def test_alignment_is_kept_when_type_grows():
    out = hba.enable_hostssl("host    all             all             0.0.0.0/0               md5\n")
    assert out.splitlines()[1] == \
        "hostssl all             all             0.0.0.0/0               scram-sha-256  # dbtls-managed"


def test_pgcl_trust_rule_for_pgpool_stays_trust_over_tls():
    out = hba.enable_hostssl("host all pgpool 10.1.2.3/32 trust\n")
    assert managed(out)[0].type == "hostssl" and managed(out)[0].method == "trust"


def test_md5_compat_never_downgrades_scram():
    text = "host all all 10.0.0.0/8 md5\nhost all all 10.0.0.0/8 scram-sha-256\nhost all all 10.0.0.0/8 password\n"
    out = hba.enable_hostssl(text, hba.HbaOptions(keep_md5_compat=True))
    assert [r.method for r in managed(out)] == ["md5", "scram-sha-256", "md5"]


@pytest.mark.parametrize("line", [
    "host all all 127.0.0.1/32 md5", "host all all 127.0.0.0/8 md5", "host all all ::1/128 md5",
    "host all all localhost md5", "host all all 127.0.0.1 255.255.255.255 md5", "local all all peer",
    "host all all 0.0.0.0/0 reject", "hostssl all all 0.0.0.0/0 md5", "hostnossl all all 0.0.0.0/0 md5",
])
def test_left_alone(line):
    assert hba.enable_hostssl(line + "\n") == line + "\n"


@pytest.mark.parametrize("address", [
    "0.0.0.0/0", "::/0", "10.0.0.0 255.0.0.0", "samehost", "samenet", "all", ".example.com", "db.internal",
    "127.0.0.0/7", "fe80::1 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
])
def test_remote_addresses_are_rewritten(address):
    out = hba.enable_hostssl(f"host all all {address} md5\n")
    assert [r.type for r in managed(out)] == ["hostssl"]


@pytest.mark.parametrize("major,option", [(10, "clientcert=1"), (11, "clientcert=1"), (12, "clientcert=verify-full"),
                                          (13, "clientcert=verify-full"), (17, "clientcert=verify-full")])
def test_clientcert_spelling_by_version(major, option):
    assert hba.clientcert_option(major) == option
    opts = hba.HbaOptions(client_cert_auth=True, client_cert_mode="password+cert", server_major=major)
    out = hba.enable_hostssl("host all all 0.0.0.0/0 md5\n", opts)
    assert managed(out)[0].options == [option]


def test_client_cert_exceptions_for_pgpool_addresses():
    text = "host all pgpool 10.1.2.3/32 trust\nhost all all 0.0.0.0/0 md5\nhost all all 10.1.2.0/24 md5\n" \
           "host all all 192.168.0.0/16 md5\nhost all all .example.com md5\nhost replication all 0.0.0.0/0 md5\n"
    opts = hba.HbaOptions(client_cert_auth=True, no_client_cert_addresses=["10.1.2.3"])
    rules = managed(hba.enable_hostssl(text, opts))
    summary = [(r.user, r.address, r.method) for r in rules]
    assert summary == [
        ("pgpool", "10.1.2.3/32", "trust"),           # trust keeps its method
        ("all", "10.1.2.3/32", "scram-sha-256"),      # exception before the catch-all
        ("all", "0.0.0.0/0", "cert"),
        ("all", "10.1.2.3/32", "scram-sha-256"),
        ("all", "10.1.2.0/24", "cert"),
        ("all", "192.168.0.0/16", "cert"),            # does not contain Pgpool: no exception
        ("all", ".example.com", "scram-sha-256"),     # cannot tell: no certificate demanded
        ("all", "0.0.0.0/0", "scram-sha-256"),        # replication: no certificate by default
    ]


def test_rule_inside_no_cert_network_gets_no_cert():
    opts = hba.HbaOptions(client_cert_auth=True, no_client_cert_addresses=["10.0.0.0/8"])
    rules = managed(hba.enable_hostssl("host all all 10.1.2.3/32 md5\n", opts))
    assert [(r.address, r.method) for r in rules] == [("10.1.2.3/32", "scram-sha-256")]


def test_client_cert_for_replication_when_asked():
    opts = hba.HbaOptions(client_cert_auth=True, client_cert_replication=True)
    rules = managed(hba.enable_hostssl("host replication all 0.0.0.0/0 md5\n", opts))
    assert rules[0].method == "cert"


def test_exception_line_for_netmask_rule_drops_mask():
    opts = hba.HbaOptions(client_cert_auth=True, no_client_cert_addresses=["10.1.2.3"])
    rules = managed(hba.enable_hostssl("host all all 10.0.0.0 255.0.0.0 md5\n", opts))
    assert [(r.address, r.mask, r.method) for r in rules] == [
        ("10.1.2.3/32", None, "scram-sha-256"), ("10.0.0.0", "255.0.0.0", "cert")]


def test_pool_hba_flavor():
    with pytest.raises(AgentError, match="clientcert"):
        hba.HbaOptions(flavor=hba.PGPOOL, client_cert_auth=True, client_cert_mode="password+cert")
    opts = hba.HbaOptions(flavor=hba.PGPOOL, client_cert_auth=True)
    out = hba.enable_hostssl("host all all 0.0.0.0/0 md5\n", opts)
    assert "hostssl all all 0.0.0.0/0 cert" in out
    with pytest.raises(AgentError, match="unknown connection type"):
        hba.parse("include x.conf\n", hba.PGPOOL)


def test_continuation_rule_is_joined_and_restored():
    text = "host all all \\\n    0.0.0.0/0 \\\n    md5\nlocal all all peer"
    out = hba.enable_hostssl(text)
    assert out == ("# dbtls-original: host all all \\\n# dbtls-original:     0.0.0.0/0 \\\n"
                   "# dbtls-original:     md5\nhostssl all all 0.0.0.0/0 scram-sha-256  # dbtls-managed\n"
                   "local all all peer")
    assert hba.disable_hostssl(out) == text
    assert hba.rules(text)[0].last_lineno == 3


def test_last_line_without_newline_round_trips():
    text = "host all all 0.0.0.0/0 md5"
    out = hba.enable_hostssl(text)
    assert out == "# dbtls-original: host all all 0.0.0.0/0 md5\nhostssl all all 0.0.0.0/0 scram-sha-256  # dbtls-managed"
    assert hba.disable_hostssl(out) == text


def test_crlf_and_bom_round_trip():
    text = "\ufeffhost all all 0.0.0.0/0 md5\r\nlocal all all peer\r\n"
    out = hba.enable_hostssl(text)
    assert out.startswith("\ufeff# dbtls-original: ") and "scram-sha-256  # dbtls-managed\r\n" in out
    assert hba.disable_hostssl(out) == text


def test_tokens_quotes_lists_and_includes():
    text = 'host "all",db2, "my db" alice,"bob" 10.0.0.0/8 ldap ldapsuffix=", dc=x" # c\ninclude_dir hba.d\n'
    rule, include = hba.parse(text)
    assert [t.text for t in rule.fields[1].tokens] == ["all", "db2", "my db"]
    assert rule.fields[1].tokens[0].quoted
    assert rule.options == ['ldapsuffix=", dc=x"']
    assert include == hba.Include(2, "include_dir", "hba.d")


def test_enable_replaces_previous_options():
    text = "host all all 0.0.0.0/0 md5\n"
    first = hba.enable_hostssl(text, hba.HbaOptions(client_cert_auth=True))
    second = hba.enable_hostssl(first, hba.HbaOptions())
    assert second == hba.enable_hostssl(text) and hba.disable_hostssl(second) == text


def test_bad_no_cert_address():
    with pytest.raises(AgentError, match="not an IP"):
        hba.HbaOptions(no_client_cert_addresses=["pgpool-node"])
