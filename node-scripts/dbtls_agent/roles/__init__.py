"""The role registry: which module configures which server, and what a role module must provide.

The role protocol (:data:`PROTOCOL`; ``tests/unit/agent/roles/test_role_protocol.py`` holds every
registered module to it): a role module ``roles/<family>/role.py`` has ``ROLE`` (its name here) and

* ``detect() -> dict or None``: the server's facts when it lives on this node (``role``,
  ``running``, ``version``, its files), None otherwise;
* ``enable(ctx)``, ``disable(ctx)``: change the node (idempotent; every step journaled) and return a
  JSON-ready dict with ``role``, what changed and ``messages``;
* ``status(ctx)``: what the server serves now, as a JSON-ready dict with ``role``.

``ctx`` is a :class:`dbtls_agent.roles.base.Context`. Adding a server family means adding a package
and one line here; the command modules never change.
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

#: The functions every role module has, with the number of arguments each takes.
PROTOCOL = {"detect": 0, "enable": 1, "disable": 1, "status": 1}  # type: Dict[str, int]


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
