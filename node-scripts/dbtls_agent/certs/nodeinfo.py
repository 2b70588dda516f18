"""What this node is called and where it can be reached: the names a server certificate must carry.

libpq's ``verify-full`` matches the host a client typed against the certificate's SANs (DNS names
for names, IP SANs for addresses), so the certificate needs every name and address clients use:
hostname, FQDN, the environment domain (the platform's entry point resolves it to the nodes), and
each non-loopback address. Parsing is kept in pure functions over text so it can be tested with
fixture output from nodes we do not have; the ``collect`` function at the bottom does the I/O.
"""

import ipaddress
import os
import re
import shutil
import socket
import subprocess
from typing import Callable, Dict, Iterable, List, Optional

METAINF_PATH = "/etc/jelastic/metainf.conf"
JELENV_PATH = "/.jelenv"

# Platform node names: node<ID>-<env>.<domain>, e.g. node1234-env-5678.example-cloud.com.
_NODE_LABEL = re.compile(r"^node\d+-(?P<rest>.+)$", re.IGNORECASE)
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def parse_env_file(text: str) -> Dict[str, str]:
    """Parse a shell-sourceable KEY=VALUE file (metainf.conf, .jelenv) without running a shell.

    Only the simple forms the platform writes are understood: optional ``export``, single or double
    quotes, ``#`` comments. Anything else is skipped rather than guessed at.
    """
    result = {}  # type: Dict[str, str]
    for line in text.splitlines():
        match = _ENV_LINE.match(line)
        if not match:
            continue
        value = match.group("value").strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        result[match.group("key")] = value
    return result


def env_domain_from_fqdn(fqdn: str) -> Optional[str]:
    """``node12-myenv.example.com`` -> ``myenv.example.com``; None for names not shaped like that."""
    labels = fqdn.rstrip(".").split(".")
    match = _NODE_LABEL.match(labels[0])
    if not match or len(labels) < 2:
        return None
    return ".".join([match.group("rest")] + labels[1:]).lower()


def usable_address(text: str) -> Optional[str]:
    """Normalised form of an address a client could connect to, or None (loopback, link-local...)."""
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0].split("/", 1)[0])
    except ValueError:
        return None
    if addr.is_loopback or addr.is_link_local or addr.is_unspecified or addr.is_multicast:
        return None
    return addr.compressed


def _unique(items: Iterable[Optional[str]]) -> List[str]:
    seen = []  # type: List[str]
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return seen


def parse_ip_addr(text: str) -> List[str]:
    """Addresses from ``ip -o addr`` output (one line per address: ``2: eth0 inet 10.0.0.5/24 ...``)."""
    found = []  # type: List[Optional[str]]
    for line in text.splitlines():
        fields = line.split()
        for family in ("inet", "inet6"):
            if family in fields:
                index = fields.index(family)
                if index + 1 < len(fields):
                    found.append(usable_address(fields[index + 1]))
    return _unique(found)


def parse_fib_trie(text: str) -> List[str]:
    """IPv4 addresses assigned to this host, from /proc/net/fib_trie (``/32 host LOCAL`` leaves).

    Used when ``ip`` is missing (minimal images). Each leaf line ``|-- a.b.c.d`` is followed by its
    route types; only ``host LOCAL`` leaves are the node's own addresses.
    """
    found = []  # type: List[Optional[str]]
    last = None  # type: Optional[str]
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            last = stripped[3:].strip()
        elif "host LOCAL" in stripped and last:
            found.append(usable_address(last))
    return _unique(found)


def parse_if_inet6(text: str) -> List[str]:
    """IPv6 addresses from /proc/net/if_inet6 (32 hex digits, ifindex, prefix, scope, flags, name)."""
    found = []  # type: List[Optional[str]]
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or len(fields[0]) != 32:
            continue
        groups = [fields[0][i:i + 4] for i in range(0, 32, 4)]
        found.append(usable_address(":".join(groups)))
    return _unique(found)


Runner = Callable[[List[str]], Optional[str]]


def _run(argv: List[str]) -> Optional[str]:
    """Output of a read-only command, or None when it is missing or fails (callers fall back)."""
    if not shutil.which(argv[0]):
        return None
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", "replace")


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def local_addresses(run: Runner = _run, read: Callable[[str], Optional[str]] = _read) -> List[str]:
    """Every non-loopback, non-link-local address of this node, IPv4 first."""
    text = run(["ip", "-o", "addr", "show"])
    if text is not None:
        addrs = parse_ip_addr(text)
    else:
        addrs = parse_fib_trie(read("/proc/net/fib_trie") or "")
        addrs += parse_if_inet6(read("/proc/net/if_inet6") or "")
        if not addrs:
            addrs = _resolver_addresses()
    return sorted(_unique(addrs), key=lambda a: (":" in a, a))


def _resolver_addresses() -> List[str]:
    """Last resort: what the resolver says our own name maps to."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return []
    return _unique(usable_address(info[4][0]) for info in infos)


def host_names() -> Dict[str, str]:
    """Short hostname and FQDN, asking the resolver only when the kernel name has no domain.

    ``socket.getfqdn`` does a reverse lookup that can hang for seconds on a broken resolver; the
    canonical-name lookup used here is what ``hostname -f`` does and normally hits /etc/hosts.
    """
    name = socket.gethostname()
    fqdn = name
    if "." not in name:
        try:
            infos = socket.getaddrinfo(name, None, 0, 0, 0, socket.AI_CANONNAME)
            if infos and infos[0][3]:
                fqdn = infos[0][3]
        except OSError:
            pass
    return {"hostname": name.split(".", 1)[0].lower(), "fqdn": fqdn.rstrip(".").lower()}


def collect(run: Runner = _run, read: Callable[[str], Optional[str]] = _read) -> Dict[str, object]:
    """Everything certificate issuing needs to know about this node, as one plain dict.

    Of the platform files only COMPUTE_TYPE(_VERSION) are passed on: .jelenv can hold credentials
    and this dict ends up in JSON output.
    """
    names = host_names()
    platform = {}  # type: Dict[str, str]
    for path in (METAINF_PATH, JELENV_PATH):
        text = read(path)
        if text:
            platform.update(parse_env_file(text))
    env_domain = env_domain_from_fqdn(names["fqdn"])
    return {
        "hostname": names["hostname"],
        "fqdn": names["fqdn"],
        "env_domain": env_domain,
        "env_name": env_domain.split(".", 1)[0] if env_domain else None,
        "addresses": local_addresses(run, read),
        "compute_type": platform.get("COMPUTE_TYPE"),
        "compute_type_version": platform.get("COMPUTE_TYPE_VERSION"),
    }


def compute_type(path: Optional[str] = None) -> str:
    """The platform's COMPUTE_TYPE of this node (``postgres``, ``mariadb`` ...): metainf.conf first,
    then the environment; empty when neither says."""
    text = _read(path or METAINF_PATH) or ""
    return parse_env_file(text).get("COMPUTE_TYPE", "") or os.environ.get("COMPUTE_TYPE", "")


def server_san_defaults(info: Dict[str, object]) -> List[str]:
    """Default SANs (``DNS:``/``IP:`` strings) for this node's server certificate, names first."""
    names = [info.get("hostname"), info.get("fqdn"), info.get("env_domain")]
    addresses = info.get("addresses") or []
    sans = ["DNS:" + str(n) for n in names if n]
    sans += ["IP:" + str(a) for a in addresses]  # type: ignore
    return _unique(sans)
