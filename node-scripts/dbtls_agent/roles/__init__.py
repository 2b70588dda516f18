"""The role registry: which module configures which server.

A role module exposes ``detect() -> dict or None`` (facts when that server lives on this node),
``enable(ctx)``, ``disable(ctx)`` and ``status(ctx)``, each returning a JSON-ready dict. Adding a
server family means adding a module and one line here; the command module never changes.
"""

import importlib
from types import ModuleType
from typing import Dict, List

from dbtls_agent.errors import AgentError

# Order matters for --role auto: the first role whose detect() finds something wins.
ROLE_MODULES = {
    "postgres": "dbtls_agent.roles.postgres.role",
    "pgpool": "dbtls_agent.roles.pgpool.role",
    "mysql": "dbtls_agent.roles.mysql.role",
    "proxysql": "dbtls_agent.roles.proxysql.role",
}  # type: Dict[str, str]

ROLE_NAMES = ("postgres", "pgpool", "mysql", "proxysql")


def load(role: str) -> ModuleType:
    """The module for ``role``; one-line error for a name that is not a role."""
    path = ROLE_MODULES.get(role)
    if path is None:
        raise AgentError("unknown role {!r}; known roles: {}".format(role, ", ".join(ROLE_NAMES)))
    return importlib.import_module(path)


def detect_all() -> List[Dict[str, object]]:
    """detect() of every role that finds its server here, in registry order."""
    results = []
    for role in ROLE_NAMES:
        facts = load(role).detect()
        if facts:
            results.append(facts)
    return results
