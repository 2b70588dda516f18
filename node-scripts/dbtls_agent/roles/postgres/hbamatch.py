"""Which role an hba rule's user (and database) field names, and how to write a role name into one.

Used twice: to place a per-role ``md5`` rule in front of every rewritten rule that names a role
still holding an md5 secret (see :mod:`dbtls_agent.roles.postgres.hba`), and by the pre-flight report to tell
which roles can log in remotely and which rule a plaintext session would meet after enable.

PostgreSQL's rules for the user field (hba.c ``check_role``): ``all`` matches every role; ``+name``
matches members of role ``name`` (directly or through other roles); ``/regex`` (PostgreSQL 16+) is a
regular expression; ``@file`` includes names from a file; anything else, or any quoted token, is a
literal role name. Quoting takes the special meaning away. Names compare case-sensitively.

What we cannot evaluate (``@file``, a regular expression Python cannot compile) counts as *not*
matching: an extra rule placed for a role that the original rule did not admit would let that
role in where it was not let in before.
"""

import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

# A token as pghba produces it: (text, quoted).
TokenLike = Tuple[str, bool]

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_$.\-]*\Z")
_USER_KEYWORDS = ("all",)  # the only keyword of the user field; +, @, / prefixes are checked apart


def transitive_groups(memberships: Iterable[Tuple[str, str]]) -> Dict[str, List[str]]:
    """role -> every role it is a member of, directly or indirectly, from (member, group) pairs."""
    direct = {}  # type: Dict[str, Set[str]]
    for member, group in memberships:
        direct.setdefault(member, set()).add(group)
    result = {}  # type: Dict[str, List[str]]
    for role in direct:
        seen = set()  # type: Set[str]
        todo = list(direct[role])
        while todo:
            group = todo.pop()
            if group in seen:
                continue
            seen.add(group)
            todo.extend(direct.get(group, ()))
        result[role] = sorted(seen)
    return result


def token_matches_role(token: TokenLike, role: str, groups: Optional[Dict[str, Sequence[str]]] = None) -> bool:
    """Does one user-field token name ``role``? ``groups``: role -> groups (see transitive_groups)."""
    text, quoted = token[0], token[1]
    if quoted:
        return text == role
    if text == "all":
        return True
    if text.startswith("+"):
        return text[1:] == role or text[1:] in (groups or {}).get(role, ())
    if text.startswith("@"):
        return False
    if text.startswith("/"):
        try:
            return re.search(text[1:], role) is not None
        except re.error:
            return False
    return text == role


def user_matches(tokens: Sequence[TokenLike], role: str, groups: Optional[Dict[str, Sequence[str]]] = None) -> bool:
    """Does the user field (a comma list of tokens) admit ``role``?"""
    return any(token_matches_role(t, role, groups) for t in tokens)


def database_matches(tokens: Sequence[TokenLike], database: str, role: str,
                     groups: Optional[Dict[str, Sequence[str]]] = None, replication: bool = False) -> bool:
    """Does the database field admit a connection to ``database`` (or a physical replication one)?

    ``all`` does not match replication connections; ``replication`` matches only those.
    """
    for text, quoted in tokens:
        if quoted:
            if not replication and text == database:
                return True
            continue
        if text == "replication":
            if replication:
                return True
            continue
        if replication:
            continue
        if text == "all":
            return True
        if text == "sameuser" and database == role:
            return True
        if text in ("samerole", "samegroup") and database in (groups or {}).get(role, ()):
            return True
        if text.startswith("/"):
            try:
                if re.search(text[1:], database) is not None:
                    return True
            except re.error:
                pass
            continue
        if text.startswith("@"):
            continue
        if text == database:
            return True
    return False


def can_write_name(name: str) -> bool:
    """True when ``name`` can be written into an hba file as one literal token.

    Inside double quotes anything but a double quote and control characters is literal; hba files
    have no escape for a double quote.
    """
    return bool(name) and '"' not in name and not any(ord(c) < 32 or ord(c) == 127 for c in name)


def name_token(name: str) -> str:
    """``name`` as a literal user-field token: bare when that is unambiguous, else double-quoted."""
    if not can_write_name(name):
        raise ValueError("role name {!r} cannot be written into an hba file".format(name))
    if _PLAIN_NAME.match(name) and name not in _USER_KEYWORDS:
        return name
    return '"' + name + '"'
