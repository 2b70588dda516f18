"""Get dbtls-agent into simulated nodes, run it, and issue the environment's certificates with it.

Shared by the docker tests of every role. The agent is copied as a plain package (no zipapp build
needed) to /opt/dbtls-agent in the container and run with ``python3 -m dbtls_agent``.
"""

from __future__ import annotations

import json
from typing import Any

from harness import AGENT_DIR, CERT_DIR, agent, agent_argv, install_agent

__all__ = ["AGENT_DIR", "CERT_DIR", "agent", "agent_argv", "agent_json", "install_agent", "issue_certificates"]


def container_name(env: Any, role_or_name: str, index: int = 0) -> str:
    names = [n.name for n in env.nodes if n.role == role_or_name]
    if names:
        return names[index]
    assert any(n.name == role_or_name for n in env.nodes), role_or_name
    return role_or_name


def agent_json(env: Any, container: str, *args: str, **kwargs: Any) -> dict:
    proc = agent(env, container, *args, **kwargs)
    assert proc.returncode == 0, f"{args}: rc={proc.returncode} {proc.stderr.decode()} {proc.stdout.decode()}"
    return json.loads(proc.stdout)


def issue_certificates(env: Any, ca_container: str, containers: list[str], client: bool = True) -> str:
    """CA on ``ca_container``, a server CSR (and webadmin client CSR) per node, sign, install.

    Returns root.crt as PEM. Idempotent: the CA and node keys are kept when they exist.
    """
    for name in {ca_container, *containers}:
        install_agent(env, name)
    proc = agent(env, ca_container, "ca", "init")
    assert proc.returncode == 0, proc.stderr.decode()
    root = proc.stdout.decode()
    for name in containers:
        csrs = []
        kinds = ["server"] + (["client"] if client else [])
        for kind in kinds:
            proc = agent(env, name, "csr", "--kind", kind)
            assert proc.returncode == 0, proc.stderr.decode()
            csrs.append(proc.stdout)
        signed = agent_json(env, ca_container, "ca", "sign", stdin=b"".join(csrs))
        bundle = "".join(item["certificate"] for item in signed["certificates"]) + signed["ca"]["certificate"]
        proc = agent(env, name, "install-certs", stdin=bundle.encode())
        assert proc.returncode == 0, proc.stderr.decode()
    return root
