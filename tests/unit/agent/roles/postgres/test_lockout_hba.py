"""Per-role md5 rules in pg_hba.conf / pool_hba.conf, and which rule a connection meets."""

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.postgres import access, hba, hbamatch

PLATFORM = (
    "local   all             all                                     peer\n"
    "host    all             all             127.0.0.1/32            md5\n"
    "host    all             pgpool          0.0.0.0/0               md5\n"
    "host    all             all             0.0.0.0/0               md5\n"
    "host    replication     all             0.0.0.0/0               md5\n"
)


def managed(text, flavor=hba.POSTGRESQL):
    return [(r.type, r.database, r.user, r.address, r.method) for r in hba.rules(text, flavor) if r.managed]


def test_md5_roles_get_a_rule_of_their_own_before_the_scram_rule():
    opts = hba.HbaOptions(md5_roles=["app", "pgpool"], replication_roles=["replication"])
    out = hba.enable_hostssl(PLATFORM, opts)
    assert managed(out) == [
        ("hostssl", "all", "pgpool", "0.0.0.0/0", "md5"),
        ("hostssl", "all", "pgpool", "0.0.0.0/0", "scram-sha-256"),
        # pgpool's copy for the catch-all rule would be identical to the one above: left out
        ("hostssl", "all", "app", "0.0.0.0/0", "md5"),
        ("hostssl", "all", "all", "0.0.0.0/0", "scram-sha-256"),
        # app and pgpool cannot replicate: no copy of the replication rule for them
        ("hostssl", "replication", "all", "0.0.0.0/0", "scram-sha-256"),
    ]
    assert out.splitlines()[6] == "hostssl all             app             0.0.0.0/0               md5  # dbtls-managed"
    assert hba.disable_hostssl(out) == PLATFORM  # byte for byte
    assert hba.enable_hostssl(out, opts) == out  # idempotent
    assert hba.md5_rule_roles(out, ["app", "pgpool", "other"]) == ["app", "pgpool"]


def test_next_run_drops_the_rule_of_a_role_that_got_a_scram_secret():
    first = hba.enable_hostssl(PLATFORM, hba.HbaOptions(md5_roles=["app", "old"], replication_roles=[]))
    second = hba.enable_hostssl(first, hba.HbaOptions(md5_roles=["app"], replication_roles=[]))
    assert [r[2] for r in managed(second) if r[4] == "md5"] == ["app"]
    assert hba.disable_hostssl(second) == PLATFORM


def test_replication_rule_copy_for_replication_roles():
    out = hba.enable_hostssl(PLATFORM, hba.HbaOptions(md5_roles=["replication"], replication_roles=["replication"]))
    assert ("hostssl", "replication", "replication", "0.0.0.0/0", "md5") in managed(out)
    everyone = hba.enable_hostssl(PLATFORM, hba.HbaOptions(md5_roles=["app"]))  # None: no attribute data
    assert ("hostssl", "replication", "app", "0.0.0.0/0", "md5") in managed(everyone)


@pytest.mark.parametrize("name,token", [("app", "app"), ("my app", '"my app"'), ("all", '"all"'),
                                        ("+grp", '"+grp"'), ("a,b", '"a,b"'), ("Ärger#1", '"Ärger#1"')])
def test_role_names_are_written_as_literal_tokens(name, token):
    out = hba.enable_hostssl("host all all 10.0.0.0/8 md5\n", hba.HbaOptions(md5_roles=[name]))
    rule = [r for r in hba.rules(out) if r.managed and r.method == "md5"][0]
    assert rule.fields[2].raw == token
    assert [(t.text, t.quoted) for t in rule.fields[2].tokens] == [(name, token.startswith('"'))]
    assert hba.disable_hostssl(out) == "host all all 10.0.0.0/8 md5\n"


def test_a_name_with_a_double_quote_cannot_be_written():
    with pytest.raises(AgentError, match="cannot be written"):
        hba.HbaOptions(md5_roles=['we"ird'])
    assert not hbamatch.can_write_name('we"ird') and not hbamatch.can_write_name("a\nb")


def test_only_rules_that_admit_the_role_get_a_copy():
    text = ("host all alice 10.0.0.0/8 md5\nhost all +staff 10.1.0.0/16 md5\nhost all @users 10.2.0.0/16 md5\n"
            "host all /^app_ 10.3.0.0/16 md5\nhost all bob 10.4.0.0/16 md5\n")
    opts = hba.HbaOptions(md5_roles=["app_x", "carol"], role_groups={"carol": ["staff"]})
    copies = [(r[2], r[3]) for r in managed(hba.enable_hostssl(text, opts)) if r[4] == "md5"]
    # carol through +staff; app_x through the regex; @file is never evaluated; alice/bob name others
    assert copies == [("carol", "10.1.0.0/16"), ("app_x", "10.3.0.0/16")]


def test_only_md5_and_password_rules_that_become_scram_get_copies():
    text = "host all all 10.0.0.0/8 scram-sha-256\nhost all all 10.1.0.0/16 password\nhost all all 10.2.0.0/16 trust\n"
    out = managed(hba.enable_hostssl(text, hba.HbaOptions(md5_roles=["app"])))
    assert [(r[2], r[3], r[4]) for r in out] == [
        ("all", "10.0.0.0/8", "scram-sha-256"), ("app", "10.1.0.0/16", "md5"), ("all", "10.1.0.0/16", "scram-sha-256"),
        ("all", "10.2.0.0/16", "trust")]


def test_legacy_md5_mode_and_certificate_logins_add_no_copies():
    legacy = hba.enable_hostssl(PLATFORM, hba.HbaOptions(keep_md5_compat=True, md5_roles=["app"]))
    assert "app" not in [r[2] for r in managed(legacy)]
    cert = hba.enable_hostssl(PLATFORM, hba.HbaOptions(client_cert_auth=True, md5_roles=["app"],
                                                           replication_roles=[]))
    assert "app" not in [r[2] for r in managed(cert)]


def test_password_plus_cert_copies_keep_the_certificate_option_and_pgpool_exception():
    opts = hba.HbaOptions(client_cert_auth=True, client_cert_mode="password+cert", server_major=15,
                            no_client_cert_addresses=["10.0.0.7"], md5_roles=["app"])
    out = hba.enable_hostssl("host all all 10.0.0.0/8 md5\n", opts)
    rules = [r for r in hba.rules(out) if r.managed]
    assert [(r.user, r.address, r.method, r.options) for r in rules] == [
        ("app", "10.0.0.7/32", "md5", []), ("all", "10.0.0.7/32", "scram-sha-256", []),
        ("app", "10.0.0.0/8", "md5", ["clientcert=verify-full"]),
        ("all", "10.0.0.0/8", "scram-sha-256", ["clientcert=verify-full"])]
    assert hba.disable_hostssl(out) == "host all all 10.0.0.0/8 md5\n"


def test_pool_hba_gets_per_role_rules_too():
    text = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all 0.0.0.0/0 md5\n"
    opts = hba.HbaOptions(flavor=hba.PGPOOL, md5_roles=["app_pool"])
    out = hba.enable_hostssl(text, opts, source="pool_hba.conf")
    assert managed(out, hba.PGPOOL) == [("hostssl", "all", "app_pool", "0.0.0.0/0", "md5"),
                                          ("hostssl", "all", "all", "0.0.0.0/0", "scram-sha-256")]
    assert hba.disable_hostssl(out) == text


def test_transitive_groups():
    groups = hbamatch.transitive_groups([("alice", "staff"), ("staff", "everyone"), ("bob", "everyone")])
    assert groups == {"alice": ["everyone", "staff"], "staff": ["everyone"], "bob": ["everyone"]}


@pytest.mark.parametrize("field,database,role,replication,expected", [
    ("all", "db", "u", False, True), ("all", "", "u", True, False), ("replication", "", "u", True, True),
    ("replication", "db", "u", False, False), ('"replication"', "replication", "u", False, True),
    ("sameuser", "u", "u", False, True), ("sameuser", "v", "u", False, False), ("samerole", "staff", "u", False, True),
    ("db1,db2", "db2", "u", False, True), ("/^d", "db", "u", False, True),
])
def test_database_field(field, database, role, replication, expected):
    rule = hba.rules(f"host {field} all 10.0.0.0/8 md5\n")[0]
    assert hbamatch.database_matches(rule.fields[1].tokens, database, role, {"u": ["staff"]}, replication) is expected


def test_which_rule_a_plaintext_login_meets_after_enable():
    text = PLATFORM + "hostnossl all legacy 10.9.0.0/16 md5\nhost all all samenet md5\n"
    after = hba.rules(hba.enable_hostssl(text, hba.HbaOptions(md5_roles=["app"])))
    refused = access.first_match(after, "db", "app", "172.18.0.5", ssl=False)
    assert access.admits(refused) is False  # every remote rule is hostssl now
    kept = access.first_match(after, "db", "legacy", "10.9.1.2", ssl=False)
    assert access.admits(kept) is True and kept.rule.type == "hostnossl"
    over_tls = access.first_match(after, "db", "app", "172.18.0.5", ssl=True)
    assert over_tls.rule.user == "app" and over_tls.rule.method == "md5"
    unknown = access.first_match(hba.rules("host all all samenet md5\n"), "db", "x", "10.0.0.1", ssl=False)
    assert access.admits(unknown) is None
    mapped = access.first_match(hba.rules("host all all 10.0.0.0/8 md5\n"), "db", "x", "::ffff:10.1.2.3", False)
    assert access.admits(mapped) is True


def test_remote_rules_of_a_role():
    rules = hba.rules(PLATFORM + "host all all 10.0.0.0/8 reject\n")
    assert [r.lineno for r in access.remote_rules(rules, "app")] == [4, 5]
    assert [r.lineno for r in access.remote_rules(rules, "pgpool")] == [3, 4, 5]
