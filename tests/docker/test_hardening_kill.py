"""Interrupted runs and concurrent runs on real PostgreSQL and Pgpool-II nodes.

``DBTLS_TEST_KILL_AFTER_STEP`` makes the agent SIGKILL itself right after a named step. For every
step of ``enable``, ``disable`` and the re-issue sequence (``csr --rotate``, ``ca sign``,
``install-certs``, reload/restart as the manifest does it) on the postgres and pgpool roles, the
test kills the run there, runs the same command again, and checks the outcome against an
uninterrupted run: the same config files (SHA-256), the certificate we installed is the one served,
and the service accepts connections again within a deadline. One environment serves every kill
point; each point starts from the state the previous one left and is restored by the next command.
The lock test starts two runs at once on one node and proves the second waited for the first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hardening_helpers import (
    PG_FILES,
    POOL_FILES,
    issue_pg_certificates,
    psql_ok,
    reissue_server_cert,
    run_killed,
    served_fingerprint,
)
from harness import CERT_DIR, RELEASES, Env, agent_argv, sim_env, wait_for

PGPOOL_KEY = "/var/lib/pgsql/.pgpoolkey"
STEPS = {
    ("postgres", "enable"): ["preflight", "write-files", "alter-system", "apply", "verify", "rehash", "done"],
    ("postgres", "disable"): ["write-files", "apply", "done"],
    ("pgpool", "enable"): ["preflight", "write-files", "apply", "verify", "done"],
    ("pgpool", "disable"): ["write-files", "apply", "done"],
}
REISSUE_STEPS = ["csr:server:key", "install-certs:server:root", "install-certs:server:key", "install-certs:server:cert"]
COVERED: list[str] = []


@pytest.fixture(scope="module", params=RELEASES)
def env(request, engine) -> Iterator[Env]:
    for e in sim_env("pg-cluster", request.param, "hd-kill"):
        issue_pg_certificates(e)
        # A kept environment may still be enabled: servers stop requiring TLS before Pgpool stops using it.
        for node, role in (("primary", "postgres"), ("standby", "postgres"), ("pgpool", "pgpool")):
            e.agent_json(node, "disable", "--role", role)
        # Cluster order: every server offers TLS before Pgpool uses it. A standby without TLS next to
        # a primary with it makes Pgpool's SCRAM logins fail (SCRAM-SHA-256-PLUS is only offered over
        # TLS, and Pgpool refuses backends whose authentication requests differ).
        e.agent_json("standby", "enable", "--role", "postgres", "--stage", "offer", passwords=True)
        e.state["original"] = {n: e.sha(n, files(n)) for n in ("primary", "pgpool")}
        yield e
        print(f"kill points covered: {len(COVERED)}: {', '.join(COVERED)}")


def files(node: str) -> list[str]:
    return POOL_FILES + [PGPOOL_KEY] if node == "pgpool" else PG_FILES


def enable_args(env: Env, role: str) -> tuple[list[str], bytes]:
    args = ["enable", "--role", role, "--passwords-stdin"]
    if role == "postgres":
        # The primary is enabled alone here, so the standby still replicates without TLS: the
        # lockout guard would stop a re-run (it is tested in test_lockout_pg.py); this file is
        # about interruptions.
        args += ["--no-client-cert-address", env.ip["pgpool"], "--enforce-anyway"]
    return args, json.dumps(env.pw).encode()


def command(env: Env, node: str, role: str, what: str) -> tuple[list[str], bytes | None]:
    return enable_args(env, role) if what == "enable" else (["disable", "--role", role], None)


def journal(env: Env, node: str, role: str) -> dict:
    rc, out = env.exec(node, ["cat", f"{CERT_DIR}/.dbtls-state/{role}.journal.json"])
    return json.loads(out) if rc == 0 else {}


def node_fingerprint(env: Env, node: str) -> str:
    rc, out = env.exec(node, ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                              f"{CERT_DIR}/server/server.crt"])
    assert rc == 0, out
    return out.strip()


def comparable(env: Env, node: str) -> dict:
    """Config files by SHA-256; pool_passwd only when the pgpool key is the reference's (AES under it)."""
    return env.sha(node, files(node))


def same_files(now: dict, ref: dict) -> bool:
    if now.get(PGPOOL_KEY) != ref.get(PGPOOL_KEY):  # a new random pgpool key re-encrypts pool_passwd
        now = {k: v for k, v in now.items() if not k.endswith("pool_passwd")}
        ref = {k: v for k, v in ref.items() if not k.endswith("pool_passwd")}
        now.pop(PGPOOL_KEY, None), ref.pop(PGPOOL_KEY, None)
    return now == ref


def serving(env: Env, node: str, tls: bool) -> None:
    """The node accepts verify-full logins serving our certificate (tls) or plaintext logins (not tls)."""
    if tls:
        wanted = node_fingerprint(env, node)
        wait_for(lambda: served_fingerprint(env, node) == wanted and psql_ok(env, node), 60,
                 f"{node} serving {wanted}")
    else:
        wait_for(lambda: psql_ok(env, node, "disable"), 60, f"{node} accepting plaintext")


def kill_and_rerun(env: Env, node: str, role: str, what: str, reference: dict) -> None:
    args, stdin = command(env, node, role, what)
    for step in STEPS[(role, what)]:
        run_killed(env, node, args, step, stdin)
        assert journal(env, node, role).get("finished") is False or step == "done", step
        again = env.agent(node, *args, stdin=stdin)
        assert again.returncode == 0, f"rerun after kill at {what}:{step}: {again.stderr.decode()}"
        assert journal(env, node, role)["finished"] is True
        assert same_files(comparable(env, node), reference), f"{role} {what} killed after {step}: files differ"
        serving(env, node, what == "enable")
        COVERED.append(f"{role} {what} {step}")
        # Back to where this command starts, by an uninterrupted run of the opposite command.
        undo_args, undo_stdin = command(env, node, role, "disable" if what == "enable" else "enable")
        proc = env.agent(node, *undo_args, stdin=undo_stdin)
        assert proc.returncode == 0, proc.stderr.decode()


def test_postgres_enable_and_disable_survive_every_kill(env):
    # Pgpool uses TLS to its backends first, so requiring TLS on the primary never locks it out.
    env.agent_json("pgpool", "enable", "--role", "pgpool", passwords=True)
    args, stdin = enable_args(env, "postgres")
    assert env.agent("primary", *args, stdin=stdin).returncode == 0
    enabled = comparable(env, "primary")
    serving(env, "primary", True)
    env.agent_json("primary", "disable", "--role", "postgres")
    assert comparable(env, "primary") == env.state["original"]["primary"]
    kill_and_rerun(env, "primary", "postgres", "enable", enabled)
    env.agent("primary", *args, stdin=stdin)
    kill_and_rerun(env, "primary", "postgres", "disable", env.state["original"]["primary"])
    env.agent("primary", *args, stdin=stdin)  # leave it enabled, as the next tests expect


def test_pgpool_enable_and_disable_survive_every_kill(env):
    # The pgpool key is random per enable; keep one for the whole test so pool_passwd is comparable.
    env.agent_json("pgpool", "enable", "--role", "pgpool", passwords=True)
    enabled = comparable(env, "pgpool")
    serving(env, "pgpool", True)
    # Plaintext through Pgpool needs the backends' md5 host rules, and disable refuses while they
    # require TLS: servers stop requiring first (documented order), then Pgpool; primary back to "offer".
    env.agent_json("primary", "disable", "--role", "postgres")
    env.agent_json("pgpool", "disable", "--role", "pgpool")
    assert same_files(comparable(env, "pgpool"), env.state["original"]["pgpool"])
    env.agent_json("primary", "enable", "--role", "postgres", "--stage", "offer", passwords=True)
    kill_and_rerun(env, "pgpool", "pgpool", "enable", enabled)
    env.agent_json("pgpool", "enable", "--role", "pgpool", passwords=True)
    kill_and_rerun(env, "pgpool", "pgpool", "disable", env.state["original"]["pgpool"])
    env.agent_json("pgpool", "enable", "--role", "pgpool", passwords=True)


def reissue(env: Env, node: str, kill: str | None) -> str:
    """The manifest's server re-issue for ``node`` with an optional kill (and re-run) at one step."""
    signed = reissue_server_cert(env, node, kill)
    rc, out = env.exec(node, ["jem", "service", "restart" if node == "pgpool" else "reload"])
    assert rc == 0, out
    return signed.decode().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("node", ["primary", "pgpool"])
def test_reissue_survives_every_kill(env, node):
    before = comparable(env, node)
    for step in [None] + REISSUE_STEPS:
        cert = reissue(env, node, step)
        rc, installed = env.exec(node, ["cat", f"{CERT_DIR}/server/server.crt"])
        assert installed == cert, f"kill at {step}: the signed certificate is not the installed one"
        status = env.agent_json(node, "inspect")
        server = next(c for c in status["certificates"] if c["role"] == "server")
        assert server["key_matches_cert"] is True, step
        rc, out = env.exec(node, ["bash", "-c", f"ls -A {CERT_DIR}/.pending {CERT_DIR}/server; "
                                  f"find {CERT_DIR} -name '*.tmp'"])
        assert out.split() == [f"{CERT_DIR}/.pending:", f"{CERT_DIR}/server:", "root.crt", "server.crt",
                               "server.key"], out
        assert same_files(comparable(env, node), before)
        serving(env, node, True)
        if step:
            COVERED.append(f"re-issue {node} {step}")


def test_ca_rotation_killed_keeps_the_old_key(env, tmp_path):
    """``ca init --rotate`` killed after saving the old CA or after the new key: the re-run keeps the
    old pair intact in ca/old-<serial>/ and ends with a matching new pair (host agent, temp dir)."""
    agent_src = str(Path(__file__).resolve().parents[2] / "node-scripts")
    cert_dir = str(tmp_path / "ssl")

    def agent(*args: str, step: str | None = None) -> subprocess.CompletedProcess:
        env_vars = dict(os.environ, PYTHONPATH=agent_src)
        if step:
            env_vars["DBTLS_TEST_KILL_AFTER_STEP"] = step
        return subprocess.run([sys.executable, "-m", "dbtls_agent", *args, "--cert-dir", cert_dir],
                              capture_output=True, env=env_vars, timeout=120)

    first = agent("ca", "init", "--cn", "hardening CA")
    assert first.returncode == 0
    old_key = (tmp_path / "ssl" / "ca" / "ca.key").read_bytes()
    for step in ("ca-init:previous-kept", "ca-init:key"):
        proc = agent("ca", "init", "--cn", "hardening CA", "--rotate", step=step)
        assert proc.returncode == -9, proc.stderr
        again = agent("ca", "init", "--cn", "hardening CA", "--rotate")
        assert again.returncode == 0, again.stderr
        olds = sorted((tmp_path / "ssl" / "ca").glob("old-*"))
        assert (olds[0] / "ca.key").read_bytes() == old_key, step
        assert (olds[0] / "ca.crt").read_bytes() == first.stdout
        pub = [subprocess.run(cmd, capture_output=True).stdout for cmd in (
            ["openssl", "x509", "-noout", "-pubkey", "-in", cert_dir + "/ca/ca.crt"],
            ["openssl", "pkey", "-pubout", "-in", cert_dir + "/ca/ca.key"])]
        assert pub[0] and pub[0] == pub[1], step
        COVERED.append(f"ca init --rotate {step}")
        # The next point starts from a fresh CA again.
        for path in sorted((tmp_path / "ssl").rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        first = agent("ca", "init", "--cn", "hardening CA")
        old_key = (tmp_path / "ssl" / "ca" / "ca.key").read_bytes()


def test_two_runs_at_once_are_serialised(env):
    """Two disables then two enables of Pgpool (each restarts it) started together on one node."""
    for what in ("disable", "enable"):
        args, stdin = command(env, "pgpool", "pgpool", what)
        argv = agent_argv(env.c["pgpool"], *args)
        first = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first.stdin.write(stdin or b"")
        first.stdin.close()
        first.stdin = None  # communicate() must not flush the closed pipe
        # The first holds the lock once its journal names this command and is not finished.
        wait_for(lambda w=what: journal(env, "pgpool", "pgpool").get("command") == w
                 and not journal(env, "pgpool", "pgpool").get("finished"), 60, f"first {what} running")
        started = time.monotonic()
        second = env.agent("pgpool", *args, stdin=stdin)
        out1, err1 = first.communicate(timeout=600)
        assert first.returncode == 0, err1.decode()
        assert second.returncode == 0, second.stderr.decode()
        assert "holds the node lock; waiting" in second.stderr.decode()
        r1, r2 = json.loads(out1), json.loads(second.stdout)
        assert r1["changed"] is True and r2["changed"] is False, (r1, r2)  # the second saw the finished first
        assert r2["action"] == "none" and time.monotonic() - started > 0
        assert journal(env, "pgpool", "pgpool")["finished"] is True
    serving(env, "pgpool", True)


def test_two_reissues_at_once_never_mix_key_and_certificate(env):
    """Re-issue pressed twice: csr --rotate and install-certs of two runs interleaved on one node."""
    runs = []
    for _ in range(2):
        proc = env.agent("standby", "csr", "--kind", "server", "--rotate")
        assert proc.returncode == 0
        signed = env.agent("primary", "ca", "sign", "--format", "pem", stdin=proc.stdout)
        runs.append(signed.stdout)
    # Only the last request's key is pending: the first bundle must be refused, the last installed.
    procs = [subprocess.Popen(agent_argv(env.c["standby"], "install-certs"), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in runs]
    for proc, bundle in zip(procs, runs, strict=True):  # both get their input before either is read
        proc.stdin.write(bundle)
        proc.stdin.close()
        proc.stdin = None  # communicate() must not flush the closed pipe
    outs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [2, 0], (codes, [o[1].decode() for o in outs])
    assert "does not match any key" in outs[0][1].decode()
    status = env.agent_json("standby", "inspect")
    server = next(c for c in status["certificates"] if c["role"] == "server")
    assert server["key_matches_cert"] is True
    env.exec("standby", ["jem", "service", "reload"])
    serving(env, "standby", True)
