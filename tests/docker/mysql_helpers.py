"""Helpers for the MySQL-family docker tests: put the agent on nodes, issue certificates, run roles.

The agent runs on the node as ``python3 -m dbtls_agent`` from /opt/dbtls (copied with ``docker cp``).
When the generic ``enable``/``disable``/``status`` commands are not in this build yet, the role
module is called through a tiny harness with the same options.
"""

from __future__ import annotations

import json
import subprocess

from harness import AGENT_DIR, CERT_DIR, agent_argv, docker_exec
from harness import install_agent as _install_agent

__all__ = ["AGENT_DIR", "CERT_DIR"]

HARNESS = r"""
import argparse, json, sys
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import base
import importlib
p = argparse.ArgumentParser()
p.add_argument("command"); p.add_argument("--role"); p.add_argument("--stage", default="all")
p.add_argument("--cert-dir", default="/var/lib/jelastic/keys/SSL-TLS"); p.add_argument("--require-tls", action="store_true")
p.add_argument("--min-tls"); p.add_argument("--passwords-stdin", action="store_true"); p.add_argument("--remove-certs", action="store_true")
a = p.parse_args()
pw = json.loads(sys.stdin.read() or "{}") if a.passwords_stdin else {}
ctx = base.Context(a, a.command, pw)
mod = importlib.import_module("dbtls_agent.roles." + a.role + ".role")
try:
    out = getattr(mod, a.command)(ctx)
except AgentError as exc:
    sys.stderr.write("dbtls-agent: error: {}\n".format(exc)); sys.exit(2)
out["messages"] = ctx.messages
print(json.dumps(out, indent=1, sort_keys=True))
"""


def container(env, role_or_name: str) -> str:
    return env.container(role_or_name)


def install_agent(env, role_or_name: str) -> None:
    _install_agent(env, container(env, role_or_name))


def agent(env, node: str, args: list[str], stdin: bytes | None = None) -> tuple[int, str]:
    """Run ``python3 -m dbtls_agent ARGS`` on a node as root; (exit code, stdout+stderr)."""
    return env.exec(node, ["env", "PYTHONPATH=" + AGENT_DIR, "python3", "-m", "dbtls_agent"] + args,
                    stdin=stdin if stdin is not None else b"")


def agent_out(env, node: str, args: list[str], stdin: bytes | None = None) -> str:
    proc = subprocess.run(agent_argv(container(env, node), *args), input=stdin or b"", capture_output=True,
                          check=False)
    assert proc.returncode == 0, (args, proc.stdout.decode(), proc.stderr.decode())
    return proc.stdout.decode()


def generic_commands_available(env, node: str) -> bool:
    code, _ = agent(env, node, ["enable", "--help"])
    return code == 0


def role(env, node: str, command: str, role_name: str, *options: str, passwords: dict | None = None
         ) -> tuple[int, dict | None, str]:
    """``enable|disable|status --role ROLE OPTIONS`` on a node; (exit code, JSON or None, raw output)."""
    argv = [command, "--role", role_name] + list(options)
    stdin = b""
    if passwords is not None:
        argv.append("--passwords-stdin")
        stdin = json.dumps(passwords).encode()
    name = container(env, node)
    python_args = ("-m", "dbtls_agent") if generic_commands_available(env, node) else ("-c", HARNESS)
    proc = subprocess.run(agent_argv(name, *argv, python_args=python_args), input=stdin, capture_output=True,
                          check=False)
    out = proc.stdout.decode(errors="replace")
    try:
        data = json.loads(out) if proc.returncode == 0 else None
    except ValueError:
        data = None
    return proc.returncode, data, out + proc.stderr.decode(errors="replace")


def issue_server_certs(env, ca_node: str, nodes: list[str], rotate: bool = False) -> dict[str, str]:
    """CA on ``ca_node`` (created once), a server certificate for every node; returns node -> serial."""
    agent_out(env, ca_node, ["ca", "init", "--cn", "mysql test CA"])
    serials = {}
    for node in nodes:
        csr = agent_out(env, node, ["csr", "--kind", "server"] + (["--rotate"] if rotate else []))
        bundle = agent_out(env, ca_node, ["ca", "sign", "--format", "pem"], stdin=csr.encode())
        result = json.loads(agent_out(env, node, ["install-certs"], stdin=bundle.encode()))
        serials[node] = result["installed"][0]["serial"]
    return serials


def read_file(env, node: str, path: str) -> bytes:
    proc = docker_exec(container(env, node), ["cat", path])
    return proc.stdout if proc.returncode == 0 else b""


def copy_between(env, src: str, path: str, dst: str, dst_path: str) -> None:
    data = read_file(env, src, path)
    docker_exec(container(env, dst), ["sh", "-c", f"mkdir -p \"$(dirname '{dst_path}')\" && cat > '{dst_path}'"],
                stdin=data, check=True)
