"""How a standby checks that it streams from its primary, not from any node of the environment.

``sslmode=verify-ca`` only proves that the peer's certificate comes from the environment's CA, and
every node has one; ``verify-full`` also demands that the certificate names the host the standby
connects to. The platform writes ``primary_conninfo`` with the primary's IP address (its cluster
scripts use ``host=<address>``); the simulated platform uses the short name ``node<ID>``, which no
certificate carries. The primary's certificate carries its hostname (the CN), FQDN, the
environment's domain and its addresses, so:

- ``host`` is an address in the certificate and libpq matches IP SANs (PostgreSQL 15 and later):
  ``verify-full`` as is;
- ``host`` is the certificate's own name (CN or ``CN.domain``): ``verify-full`` as is;
- otherwise the certificate's CN becomes ``host`` (the name libpq checks) and the address the
  standby used so far becomes ``hostaddr`` (where libpq connects; no lookup), so the route is the
  same and only the check changes;
- when none of that can be proven at enable time (no TLS answer, the certificate served at the
  primary's address does not carry that address, several hosts), the standby keeps
  ``verify-ca`` and the agent says why.

The environment's domain is never used: every node's certificate carries it. The names are read
from the certificate the primary serves at enable time, after checking that it verifies against
the environment's root and names the address it was served from (the CA signs only the platform's
names and addresses of each node).
"""

import ipaddress
import re
import socket
from typing import Any, Dict, Optional, Tuple

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.postgres import accounts, tlsprobe

#: First PostgreSQL whose libpq matches an IP address against the certificate's IP SANs.
IP_SAN_MAJOR = 15


def _ip(text: str) -> Optional[str]:
    try:
        return ipaddress.ip_address(text.strip()).compressed
    except ValueError:
        return None


def decide(pairs: Dict[str, str], address: Optional[str], peer: Optional[Dict[str, Any]], major: int,
           root: str, why_no_peer: str = "") -> Tuple[Dict[str, str], Optional[str]]:
    """(settings for primary_conninfo, reason when only verify-ca is possible): pure, see above.

    ``pairs``: the current conninfo; ``address``: where the standby connects (hostaddr, or host
    resolved); ``peer``: names of the certificate served there (:func:`tlsprobe.served_names`).
    """
    weak = {"sslmode": "verify-ca", "sslrootcert": root}
    host = pairs.get("host", "")
    if "," in host or "," in pairs.get("hostaddr", ""):
        return weak, "primary_conninfo names several hosts; the standby checks the CA only (verify-ca)"
    if host.startswith("/") or not address:
        return weak, "the standby does not reach its primary over TCP; it checks the CA only (verify-ca)"
    if peer is None:
        return weak, "cannot read the primary's certificate ({}); the standby checks the CA only " \
                     "(verify-ca)".format(why_no_peer or "no answer")
    ips = [ip for ip in (_ip(v) for v in peer.get("ips", [])) if ip]
    dns = [d.lower() for d in peer.get("dns", [])]
    cn = (peer.get("cn") or "").lower()
    if _ip(address) not in ips:
        return weak, "the certificate served at {} does not name that address; the standby checks the CA " \
                     "only (verify-ca)".format(address)
    full = {"sslmode": "verify-full", "sslrootcert": root}
    if _ip(host) is not None and _ip(host) in ips and major >= IP_SAN_MAJOR:
        return full, None
    if cn and host.lower() in dns and (host.lower() == cn or host.lower().startswith(cn + ".")):
        return full, None
    if cn and cn in dns:
        full.update({"host": cn, "hostaddr": _ip(address) or address})
        return full, None
    return weak, "the primary's certificate has no name of its own to check; the standby checks the CA only " \
                 "(verify-ca)"


def _address(pairs: Dict[str, str]) -> Tuple[Optional[str], str]:
    """(the address the standby connects to, why not found)."""
    if pairs.get("hostaddr"):
        return pairs["hostaddr"], ""
    host = pairs.get("host", "")
    if not host or host.startswith("/") or "," in host:
        return None, "no TCP host"
    if _ip(host):
        return host, ""
    try:
        infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    except OSError as exc:
        return None, "cannot resolve {}: {}".format(host, exc)
    found = [_ip(str(info[4][0])) for info in infos]
    return next((a for a in found if a), None), ""


def settings(conninfo: str, major: int, root: str) -> Tuple[Dict[str, str], Optional[str]]:
    """:func:`decide` for the standby's current ``primary_conninfo`` (probing the primary once)."""
    pairs = dict(accounts.parse_conninfo(conninfo))
    address, why = _address(pairs)
    peer = None  # type: Optional[Dict[str, Any]]
    if address:
        port = pairs.get("port", "5432")
        try:
            peer = tlsprobe.served_names(address, int(port) if port.isdigit() else 5432, root)
        except AgentError as exc:
            why = str(exc)
    return decide(pairs, address, peer, major, root, why)


def sslmode_of(conninfo: str) -> Optional[str]:
    """The sslmode a conninfo string (as pg_stat_wal_receiver shows it) asks for."""
    match = re.search(r"(?:^|\s)sslmode=([A-Za-z-]+)", conninfo)
    return match.group(1) if match else None
