"""The simulated environment the interpreter acts on, and the one port to real nodes.

The interpreter never talks to docker (or anything else) directly: it hands a script to a
:class:`NodeRunner`. The docker-backed simulation, a local shell and the unit tests' fake are all
just runners, which is what keeps the interpreter testable without containers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: Node keys the placeholders expose: the keys of placeholders.md "Node Placeholders" that the
#: simulation can fill. ``hostname`` is deliberately absent: the engine has no such key.
NODE_KEYS: frozenset[str] = frozenset({
    "id", "address", "intIP", "extIPs", "extips", "ismaster", "nodeGroup", "nodemission", "nodeType",
    "name", "url", "version", "osType",
})


def stack_name(node_type: str, version: str = "") -> str:
    """The stack name the engine shows as a node's ``name`` (``PostgreSQL 15``, ``Pgpool-II``)."""
    if node_type.startswith("postgres"):
        major = version.split(".")[0] or node_type[len("postgres"):].strip("ql") or ""
        return f"PostgreSQL {major}".strip()
    if node_type.startswith("pgpool"):
        return "Pgpool-II"
    if node_type.startswith("mariadb"):
        return "MariaDB"
    if node_type.startswith("percona"):
        return "Percona"
    if node_type.startswith("mysql"):
        return "MySQL"
    if node_type == "proxysql":
        return "ProxySQL"
    return node_type


@dataclass
class Node:
    """One platform node (container) as the manifest sees it through ``${nodes.*}``.

    ``hostname`` is for the simulator's own use (container names, tables); placeholders never
    show it (see :data:`NODE_KEYS`).
    """

    id: int
    group: str  #: layer (nodeGroup): ``sqldb``, ``pgpool``, ``proxy`` ...
    node_type: str  #: ``postgresql``, ``pgpool2``, ``mariadb-dockerized``, ``proxysql`` ...
    ismaster: bool = False
    address: str = ""  #: internal IP
    hostname: str = ""  #: ``node<ID>-<env.domain>`` unless given (simulator only)
    version: str = ""
    url: str = ""
    env_vars: dict[str, str] = field(default_factory=dict)  #: what ``/.jelenv`` would hold
    name: str = ""  #: stack name; derived from ``node_type``/``version`` when empty

    def placeholder_fields(self) -> dict[str, Any]:
        """The fields ``${nodes.g.master.<k>}`` / ``${@i.<k>}`` expose: exactly :data:`NODE_KEYS`."""
        fields = {
            "id": self.id, "address": self.address, "intIP": self.address, "extIPs": [], "extips": [],
            "ismaster": self.ismaster, "nodeGroup": self.group, "nodemission": self.group,
            "nodeType": self.node_type, "name": self.name or stack_name(self.node_type, self.version),
            "url": self.url, "version": self.version, "osType": "LINUX",
        }
        assert set(fields) == NODE_KEYS
        return fields


@dataclass
class Environment:
    """An environment: a name, a domain, and its nodes (``nodes`` may change between events)."""

    env_name: str
    domain: str
    nodes: list[Node] = field(default_factory=list)
    appid: str = ""
    status: int = 1  #: 1 = running, as upstream checks it
    region: str = "default"
    display_name: str = ""

    def __post_init__(self) -> None:
        for node in self.nodes:
            self._complete(node)

    def _complete(self, node: Node) -> None:
        if not node.hostname:
            node.hostname = f"node{node.id}-{self.domain}"
        if not node.url:
            node.url = f"http://node{node.id}-{self.domain}"

    def add(self, node: Node) -> Node:
        """Add a node (scale-out in a test) and give it the platform's hostname if it has none."""
        self._complete(node)
        self.nodes.append(node)
        return node

    def groups(self) -> list[str]:
        """Layer names in first-seen order."""
        return list(dict.fromkeys(n.group for n in self.nodes))

    def in_group(self, group: str) -> list[Node]:
        """Nodes of one layer, sorted by id (the order the platform lists them in)."""
        return sorted((n for n in self.nodes if n.group == group), key=lambda n: n.id)

    def by_id(self, node_id: int) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def placeholder_fields(self) -> dict[str, Any]:
        """``${env.*}`` (Cloud Scripting docs, placeholders.md)."""
        return {
            "envName": self.env_name, "name": self.env_name, "shortdomain": self.env_name,
            "domain": self.domain, "appid": self.appid, "status": self.status,
            "region": self.region, "url": f"http://{self.domain}/", "protocol": "http",
            "displayName": self.display_name or self.env_name, "nodes": [n.placeholder_fields() for n in
                                                                         sorted(self.nodes, key=lambda n: n.id)],
            "contexts": [], "extdomains": [],
        }


@dataclass(frozen=True)
class User:
    """The account running the add-on (``${user.*}``)."""

    email: str = "owner@example.com"
    uid: int = 1
    name: str = "owner"


@dataclass(frozen=True)
class CmdResult:
    """What one node returned for one ``cmd``."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""


@runtime_checkable
class NodeRunner(Protocol):
    """Runs one engine-wrapped ``cmd`` on one node.

    ``command_b64`` is what the engine sends (actions.md, cmd): the base64 of ``yes | (TEXT)`` (or
    ``(TEXT)``), see :mod:`dbtls.jps.cmdwrap`. The node must run the equivalent of
    ``echo B64 | base64 -d | su USER``, with one difference: ``command_b64`` reaches the node on
    STDIN, never as a command-line argument, because scripts carry certificates and other material
    that must not show up in ``/proc/*/cmdline``.
    """

    def run(self, node: Node, command_b64: str, user: str) -> CmdResult:
        ...


@dataclass
class Addon:
    """One installation of a manifest (on one layer for ``type: update``)."""

    manifest: dict[str, Any]
    node_group: str | None
    settings: dict[str, Any]
    base_url: str | None  #: ``${baseUrl}``; relative references resolve against it
    actions: dict[str, Any] = field(default_factory=dict)
    responses: dict[Any, Any] = field(default_factory=dict)
    globals_spec: dict[str, Any] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  #: alias -> real layer (nodeGroupAlias)
    unique_name: str = ""  #: the installation's ``appUniqueName`` (set when it is installed)

    @property
    def label(self) -> str:
        return f"{self.manifest.get('id') or self.manifest.get('name', '?')}@{self.node_group or '-'}"
