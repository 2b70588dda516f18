"""A client kit's ``my.cnf`` with the ``mariadb`` client against a real mariadb-cluster primary.

TLS is offered on the primary (``enable --stage offer``). An account made to log in with a client
certificate (``user-cert``, ``REQUIRE X509``) gets a kit with that very certificate; the client
container logs in with nothing but the kit's option file and the password, the server certificate
and its name verified (``ssl-verify-server-cert`` from ``[client-mariadb]``). The same option file
pointing at another CA is refused, so the verification is real.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from hardening_helpers import issue_mysql_certificates
from harness import CERT_DIR, RELEASES, Env, exec_argv, sim_env

KITS = f"{CERT_DIR}/kits"
USER, PASSWORD = "kitbob", "kit-bob-pw"


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in sim_env("mariadb-cluster", request.param, "kitm"):
        issue_mysql_certificates(e)
        e.agent_json("primary", "enable", "--role", "mysql", "--stage", "offer")
        yield e


def copy_kit(env: Env, user: str) -> None:
    out = subprocess.run(exec_argv(env.c["primary"], stdin=False, cmd=["tar", "-C", KITS, "-cf", "-", user]),
                         capture_output=True, check=True).stdout
    subprocess.run(exec_argv(env.c["client"], stdin=False, cmd=["mkdir", "-p", KITS]), check=True)
    subprocess.run(exec_argv(env.c["client"], ["tar", "-C", KITS, "-xpf", "-"]), input=out, check=True,
                   capture_output=True)


def mariadb(env: Env, option_file: str, user: str, password: str) -> tuple[int, str]:
    return env.exec("client", ["mariadb", f"--defaults-extra-file={option_file}", f"--host={env.host['primary']}",
                               f"--user={user}", "--connect-timeout=5", "--batch", "--skip-column-names", "-e",
                               "SELECT CURRENT_USER(), @@have_ssl, (SELECT VARIABLE_VALUE FROM "
                               "information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version')"],
                    env={"MYSQL_PWD": password})


def test_my_cnf_logs_in_with_the_kit_certificate(env):
    rc, out = env.exec("primary", ["mariadb", "-uroot", "-e",
                                   f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'"])
    assert rc == 0, out
    env.agent_json("primary", "user-cert", "--user", USER)  # REQUIRE X509 + a certificate in client/users/
    kit = env.agent_json("primary", "kit", "build", "--user", USER, "--host", env.host["primary"])
    assert kit["layer"] == "mysql" and kit["source"] == "user-cert", kit
    copy_kit(env, USER)
    my_cnf = f"{KITS}/{USER}/my.cnf"
    rc, out = mariadb(env, my_cnf, USER, PASSWORD)
    assert rc == 0 and out.split()[:2] == [f"{USER}@%", "YES"] and out.split()[2].startswith("TLSv1."), out
    # The account demands a certificate: the same login without the kit's files is refused.
    rc, out = env.exec("client", ["mariadb", f"--host={env.host['primary']}", f"--user={USER}", "--ssl",
                                  "--connect-timeout=5", "-e", "SELECT 1"], env={"MYSQL_PWD": PASSWORD})
    assert rc != 0 and "Access denied" in out, out
    strings = kit["connections"][0]["strings"]
    assert strings["mariadb"].startswith(f"mariadb --defaults-extra-file={my_cnf} -h {env.host['primary']}")


def test_my_cnf_verifies_the_server(env):
    """The kit's option file with its ssl-ca swapped for an unrelated CA: the server is not trusted."""
    d = f"{KITS}/{USER}"
    script = (f"set -e; cd {d}; openssl req -x509 -newkey rsa:2048 -nodes -keyout /tmp/other.key -subj /CN=other "
              "-days 2 -out /tmp/other.crt 2>/dev/null; "
              "sed 's|^ssl-ca=.*|ssl-ca=/tmp/other.crt|' my.cnf > /tmp/other.cnf")
    rc, out = env.exec("client", ["bash", "-c", script])
    assert rc == 0, out
    rc, out = mariadb(env, "/tmp/other.cnf", USER, PASSWORD)
    assert rc != 0 and "certificate" in out.lower(), out
