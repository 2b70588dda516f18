"""my.cnf parser and editor: byte-exact round trips, idempotent and reversible edits, and agreement with
the real option-file reader (MariaDB's ``my_print_defaults``) over the whole corpus."""

import shutil
import subprocess
from pathlib import Path

import pytest

from dbtls_agent.crypto import KEY_TYPES
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql import mycnf
from support import require

CORPUS = Path(__file__).resolve().parents[4] / "corpus" / "mycnf"
PASSING = sorted((CORPUS / "passing").iterdir())
FAILING = sorted((CORPUS / "failing").iterdir())
# Files our parser accepts on purpose although MariaDB 10.11 refuses them (we preserve, not judge, a BOM).
READER_REFUSES = {"bom.cnf"}


def read(path):
    return path.read_bytes().decode("utf-8")


def ids(paths):
    return [p.name for p in paths]


def test_corpus_is_there():
    assert len(PASSING) >= 10 and len(FAILING) >= 3


@pytest.mark.parametrize("path", PASSING, ids=ids(PASSING))
def test_parse_render_round_trip(path):
    text = read(path)
    assert mycnf.render(mycnf.parse(text)) == text


@pytest.mark.parametrize("path", PASSING, ids=ids(PASSING))
@pytest.mark.parametrize("directory", ["/etc/mysql/conf.d", "/etc/mysql/conf.d/", "/srv/other.d"])
def test_ensure_includedir_is_idempotent_and_reversible(path, directory):
    text = read(path)
    once = mycnf.ensure_includedir(text, directory)
    assert mycnf.ensure_includedir(once, directory) == once
    assert mycnf.has_includedir(once, directory)
    assert mycnf.render(mycnf.parse(once)) == once
    if mycnf.has_includedir(text, directory):
        assert once == text
    assert mycnf.remove_includedir(once, directory) == text
    # The edit keeps the file's line endings and BOM.
    assert once.startswith(mycnf.BOM) == text.startswith(mycnf.BOM)
    if "\r\n" in text:
        assert "\n" not in once.replace("\r\n", "")


@pytest.mark.parametrize("path", FAILING, ids=ids(FAILING))
def test_failing_corpus_is_refused(path):
    with pytest.raises(AgentError) as info:
        mycnf.parse(read(path))
    assert str(info.value).startswith("line ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("path", FAILING, ids=ids(FAILING))
def test_editor_refuses_failing_corpus(path):
    with pytest.raises(AgentError):
        mycnf.ensure_includedir(read(path))


def expected_reader_output(text):
    """What my_print_defaults prints for the groups of this file, following no includes."""
    groups = []
    lines = []
    for line in mycnf.parse(text):
        if line.kind == mycnf.SECTION and not line.section.startswith(" ") and line.section not in groups:
            groups.append(line.section)
    for line in mycnf.parse(text):
        if line.kind == mycnf.OPTION and line.section in groups:
            lines.append("--" + line.key if line.value is None else f"--{line.key}={line.value}")
    return groups, lines


def without_includes(text):
    out = []
    for line in mycnf.parse(text):
        if line.kind in (mycnf.INCLUDE, mycnf.INCLUDEDIR):
            out.append(line.raw[len(line.raw.rstrip("\r\n")):])  # keep the line ending only
        else:
            out.append(line.raw)
    return "".join(out)


MY_PRINT_DEFAULTS = shutil.which("my_print_defaults")


@pytest.mark.parametrize("path", PASSING, ids=ids(PASSING))
def test_parser_agrees_with_real_reader(path, tmp_path):
    require(MY_PRINT_DEFAULTS is not None, "my_print_defaults not installed (apt-get install mariadb-client)")
    text = read(path)
    if path.name in READER_REFUSES:
        refused = subprocess.run([MY_PRINT_DEFAULTS, "--defaults-file=" + str(path), "mysqld"], capture_output=True)
        assert refused.returncode != 0  # documents the real reader's behaviour; we still round-trip the file
        return
    groups, expected = expected_reader_output(text)
    copy = tmp_path / "copy.cnf"
    copy.write_bytes(without_includes(text).encode("utf-8"))
    if not groups:
        return
    result = subprocess.run([MY_PRINT_DEFAULTS, "--defaults-file=" + str(copy)] + groups,
                            capture_output=True, check=True)
    assert result.stdout.decode("utf-8").splitlines() == expected


@pytest.mark.parametrize("path", FAILING, ids=ids(FAILING))
def test_real_reader_refuses_failing_corpus(path):
    require(MY_PRINT_DEFAULTS is not None, "my_print_defaults not installed (apt-get install mariadb-client)")
    result = subprocess.run([MY_PRINT_DEFAULTS, "--defaults-file=" + str(path), "mysqld"],
                            capture_output=True)
    assert result.returncode != 0


@pytest.mark.parametrize("raw, value", [
    ("plain", "plain"),
    ("  padded  ", "padded"),
    ('"quoted value"', "quoted value"),
    ("'single'", "single"),
    ('"', '"'),
    ('"abc\'', '"abc\''),
    ('"a\\"b"', 'a"b'),
    ("a\\sb", "a b"),
    ("a\\tb\\nc\\rd\\be", "a\tb\nc\rd\be"),
    ("a\\\\b", "a\\b"),
    ("a\\xb", "a\\xb"),
    ("trailing\\", "trailing\\"),
    ("", ""),
])
def test_unquote_value(raw, value):
    assert mycnf.unquote_value(raw) == value


@pytest.mark.parametrize("line, key, value", [
    ("password = \"p#ss\" # comment", "password", "p#ss"),
    ("host=db # comment", "host", "db"),
    ("x=a\\#b", "x", "a\\"),
    ("basedir=/usr ; not a comment", "basedir", "/usr ; not a comment"),
    ("skip-name-resolve", "skip-name-resolve", None),
    ("skip-name-resolve # flag with comment", "skip-name-resolve", None),
    ("  key   =   spaced   ", "key", "spaced"),
    ("empty=", "empty", ""),
])
def test_option_lines(line, key, value):
    parsed = [ln for ln in mycnf.parse("[mysqld]\n" + line + "\n") if ln.kind == mycnf.OPTION]
    assert [(p.key, p.value) for p in parsed] == [(key, value)]


def test_sections_names_and_kinds():
    text = "; c\n[MySQLd] trailing text\nport=1\n[ client]\n!include /a.cnf\n!includedir /b\n!foo\n\n"
    kinds = [ln.kind for ln in mycnf.parse(text)]
    assert kinds == ["comment", "section", "option", "section", "include", "includedir", "directive", "blank"]
    sections = [ln.section for ln in mycnf.parse(text)]
    assert sections[1:3] == ["mysqld", "mysqld"] and sections[3] == " client"


def test_options_and_duplicates():
    text = read(CORPUS / "passing" / "duplicates.cnf")
    assert mycnf.options(text, "mysqld")["ssl_cert"] == ["/old/server.crt", "/newer/server.crt", "/newest/server.crt"]
    assert mycnf.get_option(text, "MYSQLD", "ssl-cert") == "/newest/server.crt"
    assert mycnf.get_option(text, "mysqld", "ssl_key") == "/etc/mysql/server.key"  # loose- prefix
    assert mycnf.get_option(text, "mysqld", "max-connections") == "200"
    assert mycnf.get_option(text, "mysqld", "skip_name_resolve") is None
    assert "skip_name_resolve" in mycnf.options(text, "mysqld")
    assert mycnf.get_option(text, "client", "ssl_cert") is None


def test_include_directives():
    text = read(CORPUS / "passing" / "includes.cnf")
    assert mycnf.include_directives(text) == [
        mycnf.IncludeDirective("include", "/etc/mysql/extra.cnf", 4),
        mycnf.IncludeDirective("includedir", "/etc/mysql/mariadb.conf.d/", 5),
        mycnf.IncludeDirective("includedir", "/etc/mysql/conf.d", 6),
        mycnf.IncludeDirective("include", "relative/ignored-when-missing.cnf", 9),
    ]
    assert mycnf.included_dirs(text) == ["/etc/mysql/mariadb.conf.d/", "/etc/mysql/conf.d"]
    commented = read(CORPUS / "passing" / "platform-commented-includedir.cnf")
    assert mycnf.included_dirs(commented) == []


@pytest.mark.parametrize("dirs, chosen", [
    (["/etc/mysql/conf.d/", "/etc/mysql/mariadb.conf.d/"], "/etc/mysql/conf.d"),
    (["/etc/mysql/mariadb.conf.d/", "/etc/mysql/conf.d"], "/etc/mysql/conf.d"),
    (["/etc/my.cnf.d"], "/etc/my.cnf.d"),
    (["/a.d/", "/b.d/"], "/b.d"),
    ([], None),
])
def test_choose_dropin_dir(dirs, chosen):
    assert mycnf.choose_dropin_dir(dirs) == chosen


@pytest.mark.parametrize("text, expected", [
    ("", "# dbtls: added the next line; `dbtls disable` removes it\n!includedir /etc/mysql/conf.d/\n"),
    ("[mysqld]\nport=1", "[mysqld]\nport=1\n# dbtls: added the next line; `dbtls disable` removes it "
                         "(file had no final newline)\n!includedir /etc/mysql/conf.d/\n"),
    ("[mysqld]\r\n", "[mysqld]\r\n# dbtls: added the next line; `dbtls disable` removes it\r\n"
                     "!includedir /etc/mysql/conf.d/\r\n"),
    ("[mysqld]\n!includedir /etc/mysql/conf.d\n", "[mysqld]\n!includedir /etc/mysql/conf.d\n"),
])
def test_ensure_includedir_exact_text(text, expected):
    assert mycnf.ensure_includedir(text) == expected
    assert mycnf.remove_includedir(expected) == text or mycnf.has_includedir(text, mycnf.PLATFORM_CONF_D)


def test_remove_includedir_leaves_user_lines():
    text = "[mysqld]\n!includedir /etc/mysql/conf.d/\n"  # the user's own line, no marker
    assert mycnf.remove_includedir(text) == text
    ours = mycnf.ensure_includedir("[mysqld]\n", "/other.d")
    assert mycnf.remove_includedir(ours, "/etc/mysql/conf.d") == ours  # other directory: not ours to remove


SSL_DIR = "/var/lib/jelastic/keys/SSL-TLS"


def test_render_ssl_config_default_text():
    assert mycnf.render_ssl_config(SSL_DIR) == (
        "# Managed by dbtls: TLS for this server. dbtls rewrites this file; `dbtls disable` deletes it.\n"
        "# Put your own settings in another .cnf file: for each option the last value read wins.\n"
        "[mysqld]\n"
        "ssl_ca=/var/lib/jelastic/keys/SSL-TLS/server/root.crt\n"
        "ssl_cert=/var/lib/jelastic/keys/SSL-TLS/server/server.crt\n"
        "ssl_key=/var/lib/jelastic/keys/SSL-TLS/server/server.key\n"
        "# TLS 1.2 suites for an RSA key; TLS 1.3 uses the library's (strong) defaults\n"
        "ssl-cipher=" + mycnf.RSA_CIPHERS + "\n"
        "tls_version=TLSv1.2,TLSv1.3\n"
        "#require_secure_transport=ON\n"
    )


@pytest.mark.parametrize("kwargs, present, absent", [
    ({}, ["tls_version=TLSv1.2,TLSv1.3", "#require_secure_transport=ON", "ECDHE-RSA-AES128-GCM-SHA256"],
     ["ECDSA", "[sst]", "DISABLED"]),
    ({"key_type": "ecdsa-p256"}, ["ssl-cipher=" + mycnf.ECDSA_CIPHERS], ["-RSA-"]),
    ({"key_type": "rsa4096"}, ["ssl-cipher=" + mycnf.RSA_CIPHERS], ["ECDSA-"]),
    ({"tls_versions": ["TLSv1.3"]}, ["tls_version=TLSv1.3\n"], ["TLSv1.2"]),
    ({"tls_versions": ["1.3", "tlsv1.2", "TLSv1.2"]}, ["tls_version=TLSv1.2,TLSv1.3\n"], []),
    ({"require_tls": True}, ["\nrequire_secure_transport=ON\n"], ["#require"]),
    ({"flavor": "mariadb", "version": (10, 11, 6)}, ["tls_version=TLSv1.2,TLSv1.3", "#require_secure_transport"], []),
    ({"flavor": "mariadb", "version": (10, 3, 39)}, ["# tls_version is not known"],
     ["require_secure_transport", "tls_version="]),
    ({"flavor": "mariadb", "version": (10, 4, 30)}, ["tls_version=TLSv1.2,TLSv1.3"], ["require_secure_transport"]),
    ({"flavor": "mysql", "version": (5, 7, 44)}, ["tls_version=TLSv1.2\n", "#require_secure_transport=ON"], []),
    ({"flavor": "percona", "version": (8, 0, 36), "require_tls": True}, ["\nrequire_secure_transport=ON"], []),
    ({"sst_ssl_mode": "verify_ca"}, ["[sst]\nssl-mode=VERIFY_CA\nssl-ca=/var/lib/jelastic/keys/SSL-TLS/server/root.crt"],
     ["DISABLED"]),
])
def test_render_ssl_config_variants(kwargs, present, absent):
    text = mycnf.render_ssl_config(SSL_DIR, **kwargs)
    for needle in present:
        assert needle in text
    for needle in absent:
        assert needle not in text
    assert mycnf.is_managed_by_dbtls(text)
    assert mycnf.get_option(text, "mysqld", "ssl-cert") == SSL_DIR + "/server/server.crt"


@pytest.mark.parametrize("kwargs, message", [
    ({"key_type": "ed25519"}, "key type"),
    ({"tls_versions": ["TLSv1.1"]}, "not allowed"),
    ({"tls_versions": []}, "at least one"),
    ({"tls_versions": ["TLSv1.3"], "flavor": "mysql", "version": (8, 0, 15)}, "does not support TLSv1.3"),
    ({"require_tls": True, "flavor": "mariadb", "version": (10, 4, 30)}, "require_secure_transport"),
    ({"sst_ssl_mode": "DISABLED"}, "never disables"),
])
def test_render_ssl_config_refuses(kwargs, message):
    with pytest.raises(AgentError, match=message):
        mycnf.render_ssl_config(SSL_DIR, **kwargs)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_every_agent_key_type_has_ciphers(key_type):
    expected = mycnf.ECDSA_CIPHERS if key_type.startswith("ecdsa") else mycnf.RSA_CIPHERS
    assert mycnf.ciphers_for_key(key_type) == expected


def test_render_ssl_config_quotes_odd_paths():
    text = mycnf.render_ssl_config("/keys/my keys#1")
    assert mycnf.get_option(text, "mysqld", "ssl_key") == "/keys/my keys#1/server/server.key"


def test_rendered_config_read_by_real_reader(tmp_path):
    require(MY_PRINT_DEFAULTS is not None, "my_print_defaults not installed (apt-get install mariadb-client)")
    path = tmp_path / "ssl-config.cnf"
    path.write_text(mycnf.render_ssl_config("/keys/my keys#1", "ecdsa-p256", require_tls=True, sst_ssl_mode="REQUIRED"))
    out = subprocess.run([MY_PRINT_DEFAULTS, "--defaults-file=" + str(path), "mysqld"],
                         stdout=subprocess.PIPE, check=True).stdout.decode().splitlines()
    assert out == [
        "--ssl_ca=/keys/my keys#1/server/root.crt",
        "--ssl_cert=/keys/my keys#1/server/server.crt",
        "--ssl_key=/keys/my keys#1/server/server.key",
        "--ssl-cipher=" + mycnf.ECDSA_CIPHERS,
        "--tls_version=TLSv1.2,TLSv1.3",
        "--require_secure_transport=ON",
    ]
    sst = subprocess.run([MY_PRINT_DEFAULTS, "--defaults-file=" + str(path), "sst"],
                         stdout=subprocess.PIPE, check=True).stdout.decode().splitlines()
    assert sst[0] == "--ssl-mode=REQUIRED"


@pytest.mark.parametrize("text, kind", [
    (None, "absent"),
    ("", "absent"),
    ("  \n", "absent"),
    (mycnf.render_ssl_config(SSL_DIR), "dbtls"),
    (mycnf.BOM + mycnf.render_ssl_config(SSL_DIR), "dbtls"),
    (mycnf.render_ssl_config(SSL_DIR).replace("\n", "\r\n"), "dbtls"),
    ("[mysqld]\n" + mycnf.MANAGED_MARKER + "\n", "foreign"),  # the marker must be the first line
    ("# managed by dbtls\n[mysqld]\n", "foreign"),
])
def test_classify_dropin(text, kind):
    assert mycnf.classify_dropin(text) == kind


def test_upstream_file_is_foreign():
    assert mycnf.classify_dropin(read(CORPUS / "passing" / "upstream-ssl-config.cnf")) == "foreign"

