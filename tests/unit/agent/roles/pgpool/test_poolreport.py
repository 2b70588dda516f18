"""pool_passwd classification, the Pgpool-II pre-flight analysis and pool_hba refreshes."""

from dbtls_agent.roles.pgpool import hba as poolhba
from dbtls_agent.roles.pgpool import poolpasswd
from dbtls_agent.roles.pgpool import report as poolreport
from dbtls_agent.roles.postgres import hba as pghba

KEY = b"0123456789abcdef0123456789abcdef"
OTHER_KEY = b"fedcba9876543210fedcba9876543210"


def pool_passwd():
    return ("webadmin:" + poolpasswd.md5_secret("webadmin", "w") + "\n"
            "app_pool:" + poolpasswd.md5_secret("app_pool", "p") + "\n"
            "alice:" + poolpasswd.encrypt_password("a", KEY) + "\n"
            "stale:" + poolpasswd.encrypt_password("s", OTHER_KEY) + "\n"
            "bob:TEXTbobs-password\n"
            "carol:plain-password\n"
            "dave:md5short\n"
            "erin:SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5\n"
            "we\\:ird:" + poolpasswd.md5_secret("we:ird", "x") + "\n"
            "\n"
            "garbage line without separator\n")


def test_classify_kinds_and_decryption():
    entries = poolreport.classify(pool_passwd(), KEY)
    kinds = {e["user"]: e["kind"] for e in entries}
    assert kinds == {"webadmin": "md5", "app_pool": "md5", "alice": "aes", "stale": "aes", "bob": "text",
                     "carol": "text", "dave": "text", "erin": "other", "we:ird": "md5", None: "other"}
    by_user = {e["user"]: e for e in entries}
    assert by_user["alice"]["decrypts"] is True and by_user["stale"]["decrypts"] is False
    assert "SCRAM" in by_user["erin"]["detail"]
    assert by_user[None]["line"] == 11
    assert poolreport.classify(pool_passwd())[2].get("decrypts") is None  # no key: cannot tell


def test_analyse_names_roles_without_entry_and_md5_rules():
    entries = poolreport.classify(pool_passwd(), KEY)
    hba = "local all all trust\nhost all all 0.0.0.0/0 md5\n"
    report = poolreport.analyse(entries, ["webadmin", "app_pool", "alice", "app_md5", "app_scram"], hba, "off")
    assert report["without_entry"] == ["app_md5", "app_scram"]
    # webadmin's entry is rewritten as AES by enable itself; app_pool and we:ird keep md5 rules
    assert report["md5_rules_after_enable"] == ["app_pool", "we:ird"]
    assert [n["who"] for n in report["needs_action"]] == ["app_pool", "we:ird"]
    assert report["not_working_now"] == ["stale"] and report["blockers"][0]["who"] == "stale"
    assert report["by_kind"]["aes"] == ["alice", "stale"]
    assert report["pool_hba_remote_rules"] == [{"line": 2, "type": "host", "user": "all", "method": "md5"}]
    unknown = poolreport.analyse(entries, None, hba, "off", "connection refused")
    assert unknown["without_entry"] is None and unknown["backend_roles_error"] == "connection refused"


def test_md5_users_leave_out_users_the_run_makes_aes():
    text = pool_passwd()
    assert poolhba.md5_users(text) == ["app_pool", "we:ird", "webadmin"]
    assert poolhba.md5_users(text, {"webadmin": "w", "app_pool": "p"}) == ["we:ird"]


def test_refresh_drops_the_md5_rule_once_the_entry_is_aes(tmp_path):
    cert_dir = str(tmp_path)
    poolhba.remember(cert_dir, keep_md5_compat=False, client_cert_auth=False)
    hba = "local all all trust\nhost all all 0.0.0.0/0 md5\n"
    text = "app_pool:" + poolpasswd.md5_secret("app_pool", "p") + "\n"
    enabled = pghba.enable_hostssl(hba, poolhba.options(False, False, text), source="pool_hba.conf")
    assert pghba.md5_rule_roles(enabled, ["app_pool"], pghba.PGPOOL) == ["app_pool"]
    now_aes = poolpasswd.set_entry(text, "app_pool", poolpasswd.encrypt_password("p", KEY))
    refreshed = poolhba.refreshed(enabled, now_aes, cert_dir)
    assert pghba.md5_rule_roles(refreshed, ["app_pool"], pghba.PGPOOL) == []
    assert pghba.disable_hostssl(refreshed) == hba
    assert poolhba.refreshed(hba, now_aes, cert_dir) == hba  # require stage not run: nothing of ours


def test_refresh_keeps_the_recorded_options(tmp_path):
    cert_dir = str(tmp_path)
    poolhba.remember(cert_dir, keep_md5_compat=True, client_cert_auth=False)
    hba = "host all all 0.0.0.0/0 md5\n"
    enabled = pghba.enable_hostssl(hba, poolhba.options(True, False, ""), source="pool_hba.conf")
    assert poolhba.refreshed(enabled, "", cert_dir) == enabled
    assert poolhba.recorded(cert_dir) == {"keep_md5_compat": True, "client_cert_auth": False}
