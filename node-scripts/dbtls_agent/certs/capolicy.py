"""What the CA node agrees to certify: decided on the CA node, never by the requesting node.

A request travels from a node through the manifest to the CA node, so its content is only as
trustworthy as that node. The CA therefore certifies, for node ``N``:

* server certificates only for the names the platform gives that node: ``node<N>``,
  ``node<N>-<environment domain>`` (and its shorter forms, cut at a dot, which is what a node's
  own host name looks like), the environment domain, the node's addresses as the platform lists
  them, and the extra names the person installing typed for that node's layer. A DNS name outside
  that set makes the request fail with a line naming the node and the name; an IP address the
  platform does not list for the node (a second interface, an IPv6 address) is left out of the
  certificate and reported, because the platform's list is the only proof of ownership the CA has;
* client certificates only for the database layer, and only for the layer's administrator
  (``webadmin`` for PostgreSQL, ``root`` for the MySQL family) and users that a button of the
  add-on registered on this node (``ca policy --client-user``). A client certificate's CN is a
  password-less login when client-certificate authentication is on.

The registry (extra names per layer, client users) lives in the CA node's state directory and is
written only by the install and by those buttons, both run by root on the CA node.
"""

import json
import re
from typing import Any, Dict, List, Optional, Set, Tuple

from dbtls_agent import fsio, state
from dbtls_agent.crypto.names import normalize_sans
from dbtls_agent.errors import AgentError

DATABASE_LAYER = "sqldb"
_LAYER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")


def registry_path(cert_dir: str) -> str:
    return state.layout(cert_dir).ca_policy


def load(cert_dir: str) -> Dict[str, Any]:
    text = fsio.read_text(registry_path(cert_dir))
    data = {}  # type: Dict[str, Any]
    if text:
        try:
            data = json.loads(text)
        except ValueError:
            raise AgentError("{} is not valid JSON".format(registry_path(cert_dir))) from None
    if not isinstance(data, dict):
        data = {}
    data.setdefault("extra_names", {})
    data.setdefault("client_users", [])
    return data


def save(cert_dir: str, data: Dict[str, Any]) -> None:
    fsio.ensure_dir(state.state_dir(cert_dir), 0o700)
    fsio.atomic_write(registry_path(cert_dir), (json.dumps(data, indent=1, sort_keys=True) + "\n").encode(), 0o600)


def check_layer(layer: str) -> str:
    if not _LAYER.match(layer or ""):
        raise AgentError("invalid layer name {!r}".format(layer))
    return layer


def check_user(user: str) -> str:
    if not _USER.match(user or "") or user in (".", ".."):
        raise AgentError("invalid database user name {!r} for a client certificate".format(user))
    return user


def register(cert_dir: str, layer: Optional[str], extra_names: Optional[List[str]],
             client_users: List[str]) -> Dict[str, Any]:
    """Record a layer's extra names (replacing earlier ones) and add client users; return the registry."""
    data = load(cert_dir)
    if layer is not None:
        data["extra_names"][check_layer(layer)] = [s.split(":", 1)[1] for s in normalize_sans(extra_names or [])]
    for user in client_users:
        if check_user(user) not in data["client_users"]:
            data["client_users"].append(user)
    save(cert_dir, data)
    return data


def parse_nodes(text: str) -> Dict[int, List[str]]:
    """``<id>=<ip>,<ip> <id>=...`` (platform data the manifest collected) -> {id: [IP SANs]}."""
    nodes = {}  # type: Dict[int, List[str]]
    for token in text.split():
        node, sep, addresses = token.partition("=")
        if not sep or not node.isdigit() or len(node) > 12:
            raise AgentError("node list: {!r} is not '<node id>=<address>[,<address>]'".format(token[:60]))
        ips = [a for a in addresses.split(",") if a]
        try:
            nodes[int(node)] = [s for s in normalize_sans(["IP:" + ip for ip in ips])]
        except AgentError as exc:
            raise AgentError("node list, node {}: {}".format(node, exc)) from None
    return nodes


def node_dns_names(node_id: int, env_domain: str) -> List[str]:
    """The DNS names the platform gives node ``node_id`` of the environment ``env_domain``."""
    domain = env_domain.lower().rstrip(".")
    labels = domain.split(".")
    names = ["node{}".format(node_id)]
    for end in range(1, len(labels) + 1):
        names.append("node{}-{}".format(node_id, ".".join(labels[:end])))
    names.append(domain)
    return names


def allowed_server_sans(node_id: int, ips: List[str], env_domain: str, extra: List[str]) -> Set[str]:
    """Every ``DNS:``/``IP:`` SAN the CA may certify for this node."""
    allowed = set("DNS:" + n for n in node_dns_names(node_id, env_domain))
    allowed.update(ips)
    allowed.update(normalize_sans(extra))
    return allowed


def filter_server_sans(node_id: int, cn: str, sans: List[str], allowed: Set[str]) -> Tuple[List[str], List[str]]:
    """(SANs to certify, IP SANs left out); a name the node does not own is an error."""
    if "DNS:" + cn.lower() not in allowed:
        raise AgentError("node {} asks for a server certificate named {!r}, which is not one of its platform "
                         "names; refusing to sign".format(node_id, cn))
    kept, dropped = [], []  # type: List[str], List[str]
    for san in sans:
        if san in allowed:
            kept.append(san)
        elif san.startswith("IP:"):
            dropped.append(san)
        else:
            raise AgentError("node {} asks for {} in its server certificate, which the platform does not list "
                             "for that node (nor the extra names typed at install); refusing to sign"
                             .format(node_id, san))
    return kept, dropped


def admin_user(compute_type: str) -> Optional[str]:
    """The administrator a family's client certificate is made for."""
    kind = (compute_type or "").lower()
    if kind.startswith("postgres"):
        return "webadmin"
    if kind.startswith(("mysql", "mariadb", "percona")):
        return "root"
    return None


def check_client(node_id: int, layer: str, cn: str, allowed_users: List[str]) -> None:
    if layer != DATABASE_LAYER:
        raise AgentError("node {} of layer {} asks for a client certificate; only the database layer gets one; "
                         "refusing to sign".format(node_id, layer))
    if cn not in allowed_users:
        raise AgentError("node {} asks for a client certificate for user {!r}, which is neither the "
                         "administrator nor a user the add-on's buttons named; refusing to sign".format(node_id, cn))
