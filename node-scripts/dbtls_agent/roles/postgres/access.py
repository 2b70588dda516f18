"""Which pg_hba.conf rule a connection meets, and which rules let a role in from another machine.

The server picks the first rule whose connection type, database, user and address match and
then uses only that rule. The pre-flight report asks two questions of a rule list (before and
after enable): which roles can log in remotely at all, and whether a session that is connected
right now without TLS could connect the same way again after enable.

Addresses given as host names, ``samehost`` or ``samenet`` cannot be checked here (that needs the
server's DNS and interfaces): a rule with one of them makes the answer "unknown", never a guess.
"""

import ipaddress
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

from dbtls_agent.roles.postgres import hba, hbamatch

Groups = Optional[Dict[str, Sequence[str]]]

#: The rule a connection would meet; ``certain`` is False when an address could not be checked.
Match = NamedTuple("Match", [("rule", Optional[hba.Rule]), ("certain", bool)])


def parse_ip(address: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


def address_matches(rule: hba.Rule, address: str) -> Optional[bool]:
    """True/False for IP rules and ``all``; None when it depends on DNS or the server's interfaces."""
    if rule.address is None:
        return False
    if rule.address == "all":
        return True
    network = hba.rule_network(rule)
    if network is None:
        return None
    ip = parse_ip(address)
    if ip is None:
        return None
    return ip.version == network.version and ip in network


def _type_matches(kind: str, ssl: bool) -> bool:
    if kind == "host":
        return True
    if kind == "hostssl":
        return ssl
    if kind in ("hostnossl", "hostnogssenc"):
        return not ssl
    return False  # local, hostgssenc (no GSSAPI encryption here)


def first_match(rules: Sequence[hba.Rule], database: str, user: str, address: str, ssl: bool,
                groups: Groups = None, replication: bool = False) -> Match:
    """The rule a TCP connection from ``address`` meets; (None, True) when no rule matches."""
    for rule in rules:
        if not _type_matches(rule.type, ssl):
            continue
        if not hbamatch.database_matches(rule.fields[1].tokens, database, user, groups, replication):
            continue
        if not hbamatch.user_matches(rule.fields[2].tokens, user, groups):
            continue
        found = address_matches(rule, address)
        if found is None:
            return Match(rule, False)
        if found:
            return Match(rule, True)
    return Match(None, True)


def admits(match: Match) -> Optional[bool]:
    """Would the matched rule let the connection try to authenticate? None: cannot tell."""
    if not match.certain:
        return None
    return match.rule is not None and match.rule.method != "reject"


def remote_rules(rules: Sequence[hba.Rule], role: str, groups: Groups = None) -> List[hba.Rule]:
    """Rules other than ``local`` and loopback that name ``role`` and do not reject it."""
    return [r for r in rules if r.type != "local" and not hba.is_loopback(r) and r.method != "reject"
            and hbamatch.user_matches(r.fields[2].tokens, role, groups)]
