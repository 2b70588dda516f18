"""Topologies of the simulated platform and the node plan each one expands to.

Pure data and functions: no docker here, so the naming rules (platform-style hostnames, node
groups, start order) are unit-tested without an engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DOMAIN = "vap.test"
FIRST_NODE_ID = 101


@dataclass(frozen=True)
class NodeSpec:
    """One platform node: its role (what runs), node group (the platform's layer) and tier.

    ``tier`` orders start-up: primaries first, then nodes that clone or follow them, then proxies.
    """

    role: str
    group: str
    compute_type: str
    tier: int
    db_role: str = ""


@dataclass(frozen=True)
class Node:
    """A planned node of one environment."""

    spec: NodeSpec
    node_id: int
    env: str
    is_master: bool
    domain: str = DOMAIN
    env_vars: dict[str, str] = field(default_factory=dict)

    @property
    def short_name(self) -> str:
        return f"node{self.node_id}"

    @property
    def hostname(self) -> str:
        """Platform style: ``node<ID>-<env>.<domain>``."""
        return f"node{self.node_id}-{self.env}.{self.domain}"

    @property
    def container_name(self) -> str:
        return f"dbtls-{self.env}-node{self.node_id}"


POSTGRES_PRIMARY = NodeSpec("postgres", "sqldb", "postgres", 0, "primary")
POSTGRES_STANDBY = NodeSpec("postgres", "sqldb", "postgres", 1, "standby")
PGPOOL = NodeSpec("pgpool", "pgpool", "pgpool2", 2)
MARIADB_PRIMARY = NodeSpec("mariadb", "sqldb", "mariadb", 0, "primary")
MARIADB_REPLICA = NodeSpec("mariadb", "sqldb", "mariadb", 1, "replica")
PROXYSQL = NodeSpec("proxysql", "proxy", "proxysql", 2)

TOPOLOGIES: dict[str, tuple[NodeSpec, ...]] = {
    "pg": (POSTGRES_PRIMARY,),
    "pg-cluster": (POSTGRES_PRIMARY, POSTGRES_STANDBY, PGPOOL),
    "mariadb": (MARIADB_PRIMARY,),
    "mariadb-cluster": (MARIADB_PRIMARY, MARIADB_REPLICA, PROXYSQL),
}

_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")


def validate_env_name(env: str) -> str:
    """Environment names become DNS labels and docker names: lower-case letters, digits, dashes."""
    if not _ENV_NAME.match(env):
        raise ValueError(f"environment name {env!r} must be 3-32 characters of a-z, 0-9 and '-'")
    return env


def plan(topology: str, env: str, standbys: int = 1) -> list[Node]:
    """Expand a topology into its nodes with ids, hostnames and the variables their boot reads.

    ``standbys`` sets how many streaming standbys (or MariaDB replicas) a cluster topology has.
    """
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}; choose one of {', '.join(TOPOLOGIES)}")
    validate_env_name(env)
    specs: list[NodeSpec] = []
    for spec in TOPOLOGIES[topology]:
        if spec.tier == 1:
            specs.extend([spec] * standbys)
        else:
            specs.append(spec)
    ids = {i: FIRST_NODE_ID + i for i in range(len(specs))}
    nodes = []
    masters: dict[str, int] = {}
    for i, spec in enumerate(specs):
        masters.setdefault(spec.group, ids[i])
    for i, spec in enumerate(specs):
        nodes.append(Node(spec=spec, node_id=ids[i], env=env, is_master=masters[spec.group] == ids[i]))
    return [_with_env(node, nodes) for node in nodes]


def _with_env(node: Node, nodes: list[Node]) -> Node:
    master = next(n for n in nodes if n.spec.group == node.spec.group and n.is_master)
    db_nodes = [n for n in nodes if n.spec.group == "sqldb"]
    db_primary = next((n for n in db_nodes if n.is_master), None)
    env_vars = {
        "COMPUTE_TYPE": node.spec.compute_type,
        "NODE_ID": str(node.node_id),
        "NODE_GROUP": node.spec.group,
        "MASTER_ID": str(master.node_id),
        "MASTER_HOST": master.short_name,
        "ENV_NAME": node.env,
    }
    if node.spec.role == "postgres":
        env_vars["PG_ROLE"] = node.spec.db_role
    if node.spec.role == "mariadb":
        env_vars["DB_ROLE"] = node.spec.db_role
    if db_primary is not None:
        env_vars["PRIMARY_HOST"] = db_primary.short_name
    if node.spec.role == "pgpool":
        env_vars["PG_BACKENDS"] = ",".join(n.short_name for n in db_nodes)
    if node.spec.role == "proxysql":
        env_vars["MYSQL_BACKENDS"] = ",".join(
            f"{n.short_name}:{'w' if n.is_master else 'r'}" for n in db_nodes)
    return Node(spec=node.spec, node_id=node.node_id, env=node.env, is_master=node.is_master,
                domain=node.domain, env_vars=env_vars)


def start_tiers(nodes: list[Node]) -> list[list[Node]]:
    """Nodes grouped by start tier, lowest first."""
    tiers = sorted({n.spec.tier for n in nodes})
    return [[n for n in nodes if n.spec.tier == t] for t in tiers]


def replan(nodes: list[Node]) -> list[Node]:
    """Recompute the boot variables of an existing node list (scale-out adds a node to it)."""
    return [_with_env(node, nodes) for node in nodes]
