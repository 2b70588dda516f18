"""The live part of the bad-input corpus: host names and SANs on a real agent and MariaDB.

tests/corpus/bad-input/cases.json is run against the agent's functions (tests/unit/agent/
test_bad_input.py); the cases in live-cases.json go the whole way on a simulated MariaDB node:
``csr --rotate`` with upper-case names, 63-character labels and IDN names in the SAN list (and a
host name of that shape reported by the kernel), signed by the node's CA, installed, swapped in
live, and then a client that verifies the server's identity logs in by the name a user would type.
A refusal must be one line naming the problem and leave the certificate folder exactly as it was.

The kernel host name of a container cannot be changed from inside it (no CAP_SYS_ADMIN, and user
namespaces are blocked), so the ``hostname`` cases run the agent with ``socket.gethostname``
answering the case's name: everything after that call (lower-casing, labels, SANs, signing,
serving, verifying) is the real thing.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hardening_helpers import cert_fingerprint, issue_mysql_certificates, mysql_ok, served_mysql_fingerprint
from harness import CERT_DIR, RELEASES, Env, agent_argv, sim_env

PREFIX = os.environ.get("DBTLS_HARDENING_PREFIX", "hd")
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bad-input"
CASES = json.loads((CORPUS / "live-cases.json").read_text(encoding="utf-8"))["cases"]
SSL_CONFIG = "/etc/mysql/conf.d/ssl-config.cnf"
# The agent's own entry point, with the kernel's host name replaced by the case's (see the docstring).
AS_HOST = ("import os, socket, sys\nsocket.gethostname = lambda: os.environ['DBTLS_TEST_HOSTNAME']\n"
           "from dbtls_agent.cli import main\nsys.exit(main(sys.argv[1:]))\n")


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in sim_env("mariadb", request.param, f"{PREFIX}-bad"):
        issue_mysql_certificates(e)
        e.agent_json("primary", "enable", "--role", "mysql", "--stage", "offer")
        yield e


def csr(env: Env, sans: list[str], hostname: str | None = None) -> subprocess.CompletedProcess:
    args = ["csr", "--kind", "server", "--rotate"] + [a for s in sans for a in ("--san", s)]
    if hostname is None:
        return env.agent("primary", *args)
    argv = agent_argv(env.c["primary"], *args, extra_env={"DBTLS_TEST_HOSTNAME": hostname},
                      python_args=("-c", AS_HOST))
    return subprocess.run(argv, capture_output=True, timeout=300, check=False)


def on_disk(env: Env) -> str:
    """Every file under the certificate folder (path, mode, owner, SHA-256) and the server's TLS config."""
    rc, out = env.exec("primary", ["bash", "-c", f"find {CERT_DIR} -type f -printf '%p %m %u ' -exec sha256sum {{}} \\; "
                                   f"| sort; sha256sum {SSL_CONFIG}"])
    assert rc == 0, out
    return out


def served_sans(env: Env) -> list[str]:
    """The SANs of the certificate the server serves, as openssl prints them (``DNS:name``)."""
    rc, out = env.exec("client", ["bash", "-c", f"openssl s_client -starttls mysql -connect {env.host['primary']}:3306 "
                                  "</dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName"])
    assert rc == 0 and "Subject Alternative Name" in out, out
    return [s.strip() for s in out.split("\n", 1)[1].split(",")]


def map_name(env: Env, name: str) -> None:
    """``name`` resolves to the node in the client container (glibc matches /etc/hosts case-insensitively)."""
    line = f"{env.ip['primary']} {name.lower()}"
    rc, out = env.exec("client", ["bash", "-c", f"grep -qxF '{line}' /etc/hosts || echo '{line}' >> /etc/hosts"])
    assert rc == 0, out


def install(env: Env, request: bytes) -> None:
    signed = env.agent("primary", "ca", "sign", "--format", "pem", stdin=request)
    assert signed.returncode == 0, signed.stderr.decode()
    proc = env.agent("primary", "install-certs", stdin=signed.stdout)
    assert proc.returncode == 0, proc.stderr.decode()
    swapped = env.agent_json("primary", "enable", "--role", "mysql", "--stage", "offer")
    assert swapped["apply"] in ("FLUSH SSL", "none"), swapped


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_live_bad_input(env, case):
    kind, expect = case["kind"], case["expect"]
    hostname = case["input"] if kind == "hostname" else None
    # The node's real name stays in the certificate, so the agent's own handshake check can pass.
    sans = case["input"] if kind == "san" else [env.host["primary"]]
    if expect != "works":
        assert expect.startswith("error: ")
        before = on_disk(env)
        proc = csr(env, sans, hostname)
        lines = proc.stderr.decode().strip().splitlines()
        assert proc.returncode != 0 and len(lines) == 1, (proc.returncode, lines)
        assert expect[len("error: "):] in lines[0], lines
        assert on_disk(env) == before, "a refused request changed files"
        return
    if kind != "connect":
        proc = csr(env, sans, hostname)
        assert proc.returncode == 0, proc.stderr.decode()
        install(env, proc.stdout)
        assert case["san"] in served_sans(env), served_sans(env)
    assert served_mysql_fingerprint(env, "primary") == cert_fingerprint(env, "primary")
    name = env.host["primary"].upper() if case["connect"] == "@NODE" else case["connect"]
    if case["connect"] != "@NODE":
        map_name(env, name)
    assert mysql_ok(env, name), f"a verify-identity login by {name!r} failed"


def test_client_refuses_a_name_the_certificate_lacks(env):
    """The control for the logins above: the client does check the name."""
    map_name(env, "not-in-the-certificate.example")
    assert mysql_ok(env, env.host["primary"])
    assert not mysql_ok(env, "not-in-the-certificate.example")


def test_live_corpus_covers_the_issue_list():
    names = " ".join(c["name"] for c in CASES)
    for topic in ("uppercase", "63-char", "idn"):
        assert topic in names
    assert {c["expect"] == "works" for c in CASES} == {True, False}
