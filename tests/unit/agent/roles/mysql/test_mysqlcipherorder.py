"""mysqlcipherorder: the OpenSSL file that makes mysqld's own cipher order win, and its systemd drop-in."""

import os

from dbtls_agent.roles.mysql import cipherorder as mco
from dbtls_agent.state import ChangeSet

# The shapes of the system openssl.cnf that matter: Debian 12 (openssl_init without ssl_conf),
# RHEL 9 (the full chain, system_default's body from a crypto-policies include), none at all.
DEBIAN = """HOME = .
openssl_conf = openssl_init
config_diagnostics = 1
[openssl_init]
providers = provider_sect  # comment
[provider_sect]
default = default_sect
"""
RHEL = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
ssl_conf = ssl_module
[ ssl_module ]
system_default = crypto_policy
[crypto_policy]
.include = /etc/crypto-policies/back-ends/opensslcnf.config
[provider_sect]
default = default_sect
"""
POLICY = """CipherString = @SECLEVEL=2:kEECDH:kRSA
Options = RHNoEnforceEMSinFIPS
"""


def no_dirs(path):
    raise NotADirectoryError(path)


def parse(text, files=None, listdir=no_dirs):
    return mco.parse_config(text, "/etc/ssl/openssl.cnf", (files or {}).get, listdir)


def test_parse_follows_includes_and_continues_reopened_sections():
    sections = parse(RHEL, {"/etc/crypto-policies/back-ends/opensslcnf.config": POLICY})
    assert sections["default"] == {"openssl_conf": "openssl_init"}
    assert sections["ssl_module"] == {"system_default": "crypto_policy"}
    # the included file's pairs land in the section the include stands in
    assert sections["crypto_policy"]["Options"] == "RHNoEnforceEMSinFIPS"
    assert sections["provider_sect"] == {"default": "default_sect"}
    again = parse(DEBIAN + "[openssl_init]\nssl_conf = \"mine\" # quoted\n")
    assert again["openssl_init"] == {"providers": "provider_sect", "ssl_conf": "mine"}


def test_parse_reads_a_directory_include_in_name_order_and_only_conf_files():
    files = {"/etc/ssl/d/b.cnf": "[s]\nk = b\n", "/etc/ssl/d/a.conf": "[s]\nk = a\nother = 1\n",
             "/etc/ssl/d/c.txt": "[s]\nk = c\n"}

    def listdir(path):
        if path != "/etc/ssl/d":
            raise NotADirectoryError(path)
        return ["c.txt", "b.cnf", "a.conf"]
    sections = parse(".include d\n", files, listdir)  # relative: next to the including file
    assert sections["s"] == {"k": "b", "other": "1"}


def test_debian_gets_its_missing_chain_links_from_us():
    text = mco.render_openssl_conf("/usr/lib/ssl/openssl.cnf", parse(DEBIAN))
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert lines == [".include /usr/lib/ssl/openssl.cnf",
                     "[ default ]", "config_diagnostics = 0",
                     "[ openssl_init ]", "ssl_conf = dbtls_ssl",
                     "[ dbtls_ssl ]", "system_default = dbtls_system_default",
                     "[ dbtls_system_default ]", "Options = ServerPreference,PrioritizeChaCha,NoRenegotiation"]
    assert text.startswith(mco.MARKER)


def test_rhel_keeps_the_crypto_policy_and_its_options():
    sections = parse(RHEL, {"/etc/crypto-policies/back-ends/opensslcnf.config": POLICY})
    text = mco.render_openssl_conf("/etc/pki/tls/openssl.cnf", sections)
    body = text.split(".include /etc/pki/tls/openssl.cnf\n", 1)[1]
    # A name set again in a reopened section replaces the first value: the policy's Options stay in ours.
    assert "[ crypto_policy ]\nOptions = RHNoEnforceEMSinFIPS,ServerPreference,PrioritizeChaCha,NoRenegotiation" in body
    assert "ssl_conf" not in body and "system_default" not in body


def test_no_system_file_and_no_openssl_conf_line():
    text = mco.render_openssl_conf(None, parse("# nothing\n"))
    assert ".include" not in text
    assert "[ default ]\nconfig_diagnostics = 0\n\n[ default ]\nopenssl_conf = dbtls_openssl_init" in text
    assert text.endswith("[ dbtls_system_default ]\nOptions = ServerPreference,PrioritizeChaCha,NoRenegotiation\n")


def test_merge_options_keeps_theirs_first_and_ours_once_last():
    assert mco.merge_options(None) == "ServerPreference,PrioritizeChaCha,NoRenegotiation"
    assert mco.merge_options("PrioritizeChaCha, -ServerPreference ,Bugs") == \
        "-ServerPreference,Bugs,ServerPreference,PrioritizeChaCha,NoRenegotiation"


def test_choose_unit_prefers_the_active_loaded_unit_then_the_flavours_name():
    shown = [mco.parse_systemctl_show("Id=mariadb.service\nLoadState=loaded\nActiveState=inactive\n"),
             mco.parse_systemctl_show("Id=mysqld.service\nLoadState=loaded\nActiveState=active\n"),
             mco.parse_systemctl_show("Id=mysql.service\nLoadState=not-found\nActiveState=inactive\n")]
    assert mco.choose_unit(shown, True) == "mysqld.service"
    assert mco.choose_unit(shown[:1], False) == "mariadb.service"
    assert mco.choose_unit(shown[2:], True) == "mariadb.service"
    assert mco.choose_unit([], False) == "mysqld.service"


def test_openssl_version_facts():
    assert mco.openssl_dir('OPENSSLDIR: "/usr/lib/ssl"\n') == "/usr/lib/ssl"
    assert mco.openssl_dir("nonsense") is None
    assert mco.supports_include("OpenSSL 3.0.13 30 Jan 2024 (Library: OpenSSL 3.0.13 30 Jan 2024)")
    assert mco.supports_include("OpenSSL 1.1.1w  11 Sep 2023")
    assert not mco.supports_include("OpenSSL 1.1.0l  10 Sep 2019")
    assert not mco.supports_include("LibreSSL 3.8.2")


def test_dropin_sets_only_openssl_conf_for_the_service():
    text = mco.render_dropin("/etc/mysql/dbtls-openssl.conf")
    assert text.splitlines()[-2:] == ["[Service]", "Environment=OPENSSL_CONF=/etc/mysql/dbtls-openssl.conf"]


def fake_run(ldd="libssl.so.3 => /lib/libssl.so.3", version="OpenSSL 3.0.13 30 Jan 2024"):
    def run(argv):
        if argv[0] == "ldd":
            return 0, ldd, ""
        if argv[:2] == ["openssl", "version"]:
            return (0, 'OPENSSLDIR: "/nonexistent"\n', "") if argv[2:] == ["-d"] else (0, version, "")
        return 127, "", "not here"
    return run


def test_write_files_backs_up_writes_and_undo_or_restore_removes(tmp_path, monkeypatch):
    monkeypatch.setattr(mco, "SYSTEMD_DIR", str(tmp_path / "systemd"))
    monkeypatch.setattr(mco, "SYSTEM_CANDIDATES", ())
    conf_d = tmp_path / "mysql" / "conf.d"
    conf_d.mkdir(parents=True)
    changes = ChangeSet(str(tmp_path / "certs"), "mysql")
    undo = []
    assert mco.pending(str(conf_d), True, fake_run())
    done = mco.write_files(changes, undo, str(conf_d), True, fake_run())
    conf, dropin = tmp_path / "mysql" / mco.CONF_NAME, tmp_path / "systemd" / "mariadb.service.d" / mco.DROPIN_NAME
    assert done["changed"] and done["created_dirs"] == [str(dropin.parent)]
    assert (done["openssl_conf"], done["dropin"]) == (str(conf), str(dropin))
    assert "Options = ServerPreference,PrioritizeChaCha,NoRenegotiation" in conf.read_text()
    assert dropin.read_text().endswith(f"Environment=OPENSSL_CONF={conf}\n")
    assert oct(os.stat(str(conf)).st_mode & 0o777) == "0o644"
    assert not mco.pending(str(conf_d), True, fake_run())
    assert mco.write_files(changes, [], str(conf_d), True, fake_run())["changed"] is False  # idempotent
    assert sorted(changes.paths()) == sorted([str(conf), str(dropin)])
    assert [changes.restore(p) for p in sorted(changes.paths())] == ["removed", "removed"]
    mco.write_files(changes, undo, str(conf_d), True, fake_run())
    changes.undo(undo)
    assert not conf.exists() and not dropin.exists()


def test_nothing_is_written_where_it_cannot_work(tmp_path, monkeypatch):
    monkeypatch.setattr(mco, "SYSTEMD_DIR", str(tmp_path / "systemd"))
    changes = ChangeSet(str(tmp_path / "certs"), "mysql")
    for run, why in ((fake_run(ldd="libc.so.6 => /lib/libc.so.6"), "does not use OpenSSL"),
                     (fake_run(version="OpenSSL 1.0.2u  20 Dec 2019"), "1.1.1 or later")):
        done = mco.write_files(changes, [], str(tmp_path / "conf.d"), True, run)
        assert why in done["skip"] and done["changed"] is False
        assert not mco.pending(str(tmp_path / "conf.d"), True, run)
    assert list(changes.paths()) == [] and not (tmp_path / "systemd").exists()


def test_server_order_cannot_be_told_with_one_suite():
    assert mco.server_order_enforced("127.0.0.1", 1, "/nonexistent", "ECDHE-RSA-AES128-GCM-SHA256") is None
    assert mco.server_order_enforced("127.0.0.1", 1, "/nonexistent", "A:B") is None  # no server, no CA
