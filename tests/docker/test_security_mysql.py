"""The agent runs as root next to the ``mysql`` account; these tests play that account, for real.

``user-cert`` (the "Require client certificate for a user" button) makes ``client/users/NAME`` on
the CA node, inside ``client/``, which belongs to ``mysql``. The account plants a symbolic link
there (``docker exec -u mysql``) and names a MySQL account after a root folder behind it; the
button's user name may also be ``..``. Root must refuse, leave the root folder and the node's own
client certificate alone, and change no account.

One mariadb-cluster of its own (``sec-mariadb-cluster-<release>``): certificates only, no TLS
enable needed (user-cert works on a plain server).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agent_helpers import issue_certificates
from harness import CERT_DIR, RELEASES, Env, sim_env

CLIENT = f"{CERT_DIR}/client"
VICTIM = "/etc/dbtls-sec-victim"


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in sim_env("mariadb-cluster", request.param, "sec"):
        issue_certificates(e, e.c["primary"], [e.c["primary"]])  # server/ and client/ owned by mysql
        yield e


def sh(env: Env, script: str, user: str | None = None) -> str:
    rc, out = env.exec("primary", ["bash", "-c", script], user=user)
    assert rc == 0, out
    return out


def sql(env: Env, query: str) -> str:
    rc, out = env.exec("primary", ["mariadb", "-uroot", "--batch", "--skip-column-names", "-e", query])
    assert rc == 0, out
    return out


def ssl_type(env: Env, user: str) -> str:
    return sql(env, f"SELECT ssl_type FROM mysql.user WHERE user = '{user}'").strip()


def one_line_error(proc) -> str:
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, (proc.returncode, err, proc.stdout.decode())
    return err


def test_link_planted_in_client_users_is_not_followed(env):
    """mysql makes client/users a link to a root folder holding cron.d, and an account is named
    cron.d: root must not make that folder mysql's."""
    sh(env, f"mkdir -p {VICTIM}/cron.d && chmod 0755 {VICTIM} {VICTIM}/cron.d")
    sh(env, f"rm -rf {CLIENT}/users && ln -s {VICTIM} {CLIENT}/users", user="mysql")
    sql(env, "CREATE USER IF NOT EXISTS 'cron.d'@'%' IDENTIFIED BY 'sec-pw'")
    try:
        proc = env.agent("primary", "user-cert", "--user", "cron.d")
        owner = sh(env, f"stat -c '%U:%G %a' {VICTIM}/cron.d {VICTIM}").split("\n")
        assert owner[:2] == ["root:root 755", "root:root 755"], owner
        assert sh(env, f"ls -A {VICTIM}/cron.d").strip() == ""
        assert "symbolic link" in one_line_error(proc)
        assert ssl_type(env, "cron.d") == "", "the account was changed although user-cert failed"
    finally:
        sh(env, f"rm -f {CLIENT}/users", user="mysql")
        sh(env, f"rm -rf {VICTIM}")
        sql(env, "DROP USER IF EXISTS 'cron.d'@'%'")


@pytest.mark.parametrize("name", ["..", ".", "a/b", "-x"])
def test_user_name_that_is_no_folder_name_is_refused(env, name):
    """``..`` would make client/users/.. = client/: the node's own client certificate replaced."""
    sql(env, f"CREATE USER IF NOT EXISTS '{name}'@'%' IDENTIFIED BY 'sec-pw'")
    before = env.sha("primary", [f"{CLIENT}/client.crt", f"{CLIENT}/client.key", f"{CLIENT}/root.crt"])
    try:
        proc = env.agent("primary", "user-cert", "--user=" + name)
        assert env.sha("primary", list(before)) == before
        assert ssl_type(env, name) == "", "the account was changed although user-cert failed"
        assert "not a user name" in one_line_error(proc)
    finally:
        sql(env, f"DROP USER IF EXISTS '{name}'@'%'")


def test_ordinary_user_still_gets_its_certificate(env):
    """The same command for a plain name still works, files owned by mysql in client/users/NAME."""
    sql(env, "CREATE USER IF NOT EXISTS 'sec_app'@'%' IDENTIFIED BY 'sec-pw'")
    try:
        proc = env.agent("primary", "user-cert", "--user", "sec_app")
        assert proc.returncode == 0, proc.stderr.decode()
        facts = sh(env, f"stat -c '%n %U %a' {CLIENT}/users/sec_app {CLIENT}/users/sec_app/client.key")
        assert facts.split("\n")[:2] == [f"{CLIENT}/users/sec_app mysql 700",
                                         f"{CLIENT}/users/sec_app/client.key mysql 600"], facts
        assert ssl_type(env, "sec_app") == "X509"
    finally:
        env.agent("primary", "user-cert", "--user", "sec_app", "--remove")
        sql(env, "DROP USER IF EXISTS 'sec_app'@'%'")
