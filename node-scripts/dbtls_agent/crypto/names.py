"""Validation of the names that go into certificates (CN and subjectAltName entries).

Names reach the CA from other nodes' CSRs and from users' ``--san`` options, and the openssl backend
writes them into a config file; anything outside a conservative alphabet is refused with a message
naming the bad value, rather than escaped and hoped for the best.
"""

import ipaddress
import re
from typing import List, Tuple

from dbtls_agent.errors import AgentError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# CN: host names, database user names and "<env> CA"; no characters with meaning in DN strings
# (, + = / \ ") or in openssl config files ($ #).
_CN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,63}$")


def valid_dns_name(name: str) -> bool:
    """RFC 1123 host name, optionally with one leading ``*.`` wildcard label."""
    name = name.lower().rstrip(".")
    if name.startswith("*."):
        name = name[2:]
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def normalize_san(value: str) -> str:
    """``db.example.com`` / ``DNS:db.example.com`` / ``10.0.0.1`` / ``IP:10.0.0.1`` -> ``DNS:``/``IP:`` form."""
    text = value.strip()
    kind = None
    if ":" in text and text.split(":", 1)[0].upper() in ("DNS", "IP"):
        kind, text = text.split(":", 1)
        kind = kind.upper()
    if kind in (None, "IP"):
        try:
            return "IP:" + ipaddress.ip_address(text).compressed
        except ValueError:
            if kind == "IP":
                raise AgentError("invalid IP address in SAN {!r}".format(value)) from None
    if valid_dns_name(text):
        return "DNS:" + text.lower().rstrip(".")
    raise AgentError("invalid SAN {!r}: expected a DNS name or an IP address".format(value))


def normalize_sans(values: List[str]) -> List[str]:
    """Normalise and de-duplicate: DNS names first, then addresses, each in the order given.

    A fixed order makes both backends (and re-issues) produce byte-identical SAN extensions.
    """
    result = []  # type: List[str]
    for value in values:
        san = normalize_san(value)
        if san not in result:
            result.append(san)
    return [s for s in result if s.startswith("DNS:")] + [s for s in result if s.startswith("IP:")]


def split_sans(sans: List[str]) -> Tuple[List[str], List[str]]:
    """(DNS names, IP addresses) without their prefixes."""
    dns = [s[4:] for s in sans if s.startswith("DNS:")]
    ips = [s[3:] for s in sans if s.startswith("IP:")]
    return dns, ips


def check_cn(cn: str, what: str = "common name") -> str:
    """Return ``cn`` if it is safe to certify, else raise with the reason."""
    if not cn or not _CN.match(cn):
        raise AgentError(
            "invalid {} {!r}: use 1-64 letters, digits, space and . _ @ : - (starting with a letter or digit)".format(
                what, cn
            )
        )
    return cn
