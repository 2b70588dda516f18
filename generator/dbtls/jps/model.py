"""The simulated environment the interpreter acts on, and the one port to real nodes.

The interpreter never talks to docker (or anything else) directly: it hands a script to a
:class:`NodeRunner`. The docker-backed simulation, a local shell and the unit tests' fake are all
just runners, which is what keeps the interpreter testable without containers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Node:
    """One platform node (container) as the manifest sees it through ``${nodes.*}``."""

    id: int
    group: str  #: layer (nodeGroup): ``sqldb``, ``pgpool``, ``proxy`` ...
    node_type: str  #: ``postgresql``, ``pgpool2``, ``mariadb-dockerized``, ``proxysql`` ...
    ismaster: bool = False
    address: str = ""  #: internal IP
    hostname: str = ""  #: ``node<ID>-<env.domain>`` unless given
    version: str = ""
    url: str = ""
    env_vars: dict[str, str] = field(default_factory=dict)  #: what ``/.jelenv`` would hold

    def placeholder_fields(self) -> dict[str, Any]:
        """The fields ``${nodes.g.master.<k>}`` / ``${@i.<k>}`` expose (jps.md §6, node keys)."""
        return {
            "id": self.id, "nodeGroup": self.group, "nodeType": self.node_type,
            "ismaster": self.ismaster, "address": self.address, "intIP": self.address,
            "name": self.hostname, "hostname": self.hostname, "version": self.version,
            "url": self.url,
        }


@dataclass
class Environment:
    """An environment: a name, a domain, and its nodes (``nodes`` may change between events)."""

    env_name: str
    domain: str
    nodes: list[Node] = field(default_factory=list)
    appid: str = ""
    status: int = 1  #: 1 = running, as upstream checks it
    region: str = "default"

    def __post_init__(self) -> None:
        for node in self.nodes:
            if not node.hostname:
                node.hostname = f"node{node.id}-{self.domain}"

    def add(self, node: Node) -> Node:
        """Add a node (scale-out in a test) and give it the platform's hostname if it has none."""
        if not node.hostname:
            node.hostname = f"node{node.id}-{self.domain}"
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
        """``${env.*}`` (jps.md §6)."""
        return {
            "envName": self.env_name, "name": self.env_name, "shortdomain": self.env_name,
            "domain": self.domain, "appid": self.appid, "status": self.status,
            "region": self.region, "url": f"http://{self.domain}/", "protocol": "http",
            "displayName": self.env_name,
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
    """Runs one script on one node.

    Contract: the script text must reach the node's ``bash`` on STDIN (or through a file written
    from stdin), never as a command-line argument, because scripts carry certificates and other
    material that must not show up in ``/proc/*/cmdline``. ``user`` is ``None`` for the stack's
    main user. ``say_yes`` mirrors the platform's default of piping ``yes`` into the commands;
    with ``False`` the script's stdin is empty.
    """

    def run(self, node: Node, script: str, user: str | None, *, say_yes: bool = True) -> CmdResult:
        ...
