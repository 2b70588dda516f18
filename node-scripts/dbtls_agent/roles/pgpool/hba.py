"""pool_hba.conf rules for Pgpool-II's md5 entries: who gets a per-role ``md5`` rule, and refreshing them.

Pgpool-II can run SCRAM with a client only when pool_passwd holds the clear password (an AES or
text entry). An md5 entry (what ``pg_md5 --md5auth`` writes, the platform's documented way to add a
user) can only answer md5, so under the general ``hostssl ... scram-sha-256`` rule its user would
be refused. Each such user gets ``hostssl all <user> <address> md5`` in front of the rewritten rule;
the backends' pg_hba.conf has the matching per-role rule as long as the role's secret there is md5.

The set is recomputed from pool_passwd by every pgpool require run and by ``pool-passwd allow``
(which turns a user's entry into AES and so drops its md5 rule). The options of the last require
run (legacy md5 mode, client certificates) are kept in the state directory so that a refresh
writes the same rules the require stage would.
"""

import json
import os
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio, state
from dbtls_agent.roles import lockout
from dbtls_agent.roles.pgpool import report
from dbtls_agent.roles.postgres import hba, hbamatch


def md5_users(passwd_text: str, replaced: Optional[Dict[str, str]] = None) -> List[str]:
    """Users with an md5 pool_passwd entry that this run does not replace by an AES one."""
    replaced = replaced or {}
    return sorted({e["user"] for e in report.classify(passwd_text) if e["kind"] == report.MD5
                   and e["user"] not in replaced and hbamatch.can_write_name(e["user"])})


def options(keep_md5_compat: bool, client_cert_auth: bool, passwd_text: str,
            replaced: Optional[Dict[str, str]] = None) -> hba.HbaOptions:
    return hba.HbaOptions(keep_md5_compat=keep_md5_compat, client_cert_auth=client_cert_auth, flavor=hba.PGPOOL,
                            md5_roles=md5_users(passwd_text, replaced))


def needs_action(passwd_text: str, replaced: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
    return [lockout.pool_md5_entry(u) for u in md5_users(passwd_text, replaced)]


def _path(cert_dir: str) -> str:
    return state.layout(cert_dir).pgpool_hba


def remember(cert_dir: str, keep_md5_compat: bool, client_cert_auth: bool) -> None:
    """Record the require stage's options for later refreshes (root-only state directory)."""
    path = _path(cert_dir)
    fsio.ensure_dir(os.path.dirname(path), 0o700)
    body = {"keep_md5_compat": keep_md5_compat, "client_cert_auth": client_cert_auth}
    fsio.atomic_write(path, json.dumps(body, sort_keys=True).encode(), 0o600)


def recorded(cert_dir: str) -> Dict[str, bool]:
    try:
        data = json.loads(fsio.read_text(_path(cert_dir)) or "{}")
    except ValueError:
        data = {}
    return {"keep_md5_compat": bool(data.get("keep_md5_compat")), "client_cert_auth": bool(data.get("client_cert_auth"))}


def refreshed(hba_text: str, passwd_text: str, cert_dir: str, source: str = "pool_hba.conf") -> str:
    """pool_hba.conf with its managed rules rebuilt for the current pool_passwd; unchanged when the
    require stage has not run (no managed rules: nothing of ours to keep up to date)."""
    if hba.disable_hostssl(hba_text, source=source) == hba_text:
        return hba_text
    flags = recorded(cert_dir)
    return hba.enable_hostssl(hba_text, options(flags["keep_md5_compat"], flags["client_cert_auth"], passwd_text),
                                source=source)
