"""Pre-flight report for a PostgreSQL node: what enabling TLS will do to the logins of today.

Read-only: a handful of catalog queries as the postgres OS user over the local socket, and
pg_hba.conf read from the path the server names. :func:`gather` does the I/O, :func:`analyse`
is a pure function of its result (unit-tested), so the same analysis also serves ``enable``.

The report answers, per login role and per connected session:

* whose stored secret is md5 (they keep working through a per-role ``md5`` rule, see :mod:`.hba`);
* who can log in from another machine, by which rule lines;
* which TCP sessions are connected right now without TLS (pg_stat_ssl joined with
  pg_stat_activity; the agent's own sessions, named ``dbtls-agent``, are left out), and what their
  next plaintext login meets once the remote rules are ``hostssl``;
* replication: standbys in pg_stat_replication (primary), the WAL receiver (standby).
"""

from typing import Any, Dict, List, Optional

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import lockout
from dbtls_agent.roles.postgres import access, accounts, client, hba, hbamatch, server

AGENT_APPLICATION = "dbtls-agent"
#: Roles the cluster itself uses; enable re-hashes them to SCRAM when it is given their passwords
#: (the manifest gathers them sealed), so they are not left to the user.
CLUSTER_ROLES = ("webadmin", "pgpool", "replication", "postgres")

_SESSIONS_SQL = (
    "SELECT a.pid, coalesce(a.usename::text, ''), host(a.client_addr), coalesce(a.application_name, ''), "
    "coalesce(a.datname::text, ''), coalesce(s.ssl::text, ''), coalesce(s.version, ''), "
    "coalesce(a.backend_type, ''), coalesce(extract(epoch FROM a.backend_start)::text, '') "
    "FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s USING (pid) "
    "WHERE a.client_addr IS NOT NULL AND a.pid <> pg_backend_pid() ORDER BY a.pid")
_PRIMARY_REPLICATION_SQL = (
    "SELECT coalesce(r.application_name, ''), coalesce(host(r.client_addr), ''), coalesce(r.state, ''), "
    "coalesce(s.ssl::text, ''), coalesce(r.sync_state, ''), coalesce(r.usename::text, '') "
    "FROM pg_stat_replication r LEFT JOIN pg_stat_ssl s USING (pid) ORDER BY 1, 2")


def _q(sql: str) -> List[List[str]]:
    return client.psql(sql, os_user=server.SERVICE_USER)


def gather(info: Dict[str, Any], offered_at: Optional[float] = None) -> Dict[str, Any]:
    """Everything :func:`analyse` needs, read from the running server (never changes anything).

    ``offered_at``: when our offer stage verified TLS (server epoch), if it has run.
    """
    if not info.get("running"):
        raise AgentError("PostgreSQL is not running on this node; the report needs the running server")
    roles = [{"name": n, "secret": secret_kind(p), "superuser": su == "true", "replication": rep == "true"}
             for n, p, su, rep in _q("SELECT rolname, coalesce(rolpassword, ''), rolsuper::text, "
                                     "rolreplication::text FROM pg_authid WHERE rolcanlogin ORDER BY 1")]
    members = _q("SELECT m.rolname, g.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member "
                 "JOIN pg_roles g ON g.oid = a.roleid")
    now, ssl, started = _q("SELECT extract(epoch FROM now())::text, current_setting('ssl'), "
                           "extract(epoch FROM pg_postmaster_start_time())::text")[0]
    sessions = []
    for pid, user, addr, app, db, tls, version, kind, start in _q(_SESSIONS_SQL):
        sessions.append({"pid": int(pid), "user": user, "address": addr, "application": app, "database": db,
                         "tls": tls == "true" if tls else None, "tls_version": version or None,
                         "backend_type": kind, "started": float(start) if start else None})
    facts = {"version": info.get("version"), "major": info.get("major"), "in_recovery": info.get("in_recovery"),
             "hba_file": info.get("hba_file"), "hba_text": _read_hba(info.get("hba_file")), "roles": roles,
             "memberships": [list(m) for m in members], "sessions": sessions, "now": float(now), "ssl": ssl,
             "offered_at": offered_at if offered_at is not None else (float(started) if ssl == "on" else None)}
    if info.get("in_recovery"):
        rows = _q("SELECT coalesce(status, ''), coalesce(conninfo, '') FROM pg_stat_wal_receiver")
        facts["wal_receiver"] = {"status": rows[0][0], "conninfo": rows[0][1]} if rows else None
    else:
        facts["standbys"] = [{"application_name": a, "address": c, "state": st, "tls": s == "true" if s else None,
                              "sync_state": sy, "user": u} for a, c, st, s, sy, u in _q(_PRIMARY_REPLICATION_SQL)]
    return facts


def _read_hba(path: Optional[str]) -> str:
    return (fsio.read_text(path) or "") if path else ""


def secret_kind(secret: str) -> str:
    """md5, scram, none (no password: only trust/peer/cert-style rules can let it in) or other."""
    if not secret:
        return "none"
    if secret.startswith("md5") and len(secret) == 35:
        return "md5"
    if secret.startswith("SCRAM-SHA-256$"):
        return "scram"
    return "other"


def _conninfo_value(conninfo: str, key: str) -> str:
    try:
        return dict(accounts.parse_conninfo(conninfo)).get(key, "")
    except AgentError:
        return ""


def analyse(facts: Dict[str, Any], options: Optional[hba.HbaOptions] = None,
            rehashed: Optional[List[str]] = None) -> Dict[str, Any]:
    """The report (pure). ``options``: how enable will rewrite the rules (md5_roles filled in here);
    ``rehashed``: roles enable will move to SCRAM itself (their passwords are known)."""
    rehashed = list(rehashed or [])
    groups = hbamatch.transitive_groups([tuple(m) for m in facts.get("memberships", [])])
    roles = facts["roles"]
    md5 = [r["name"] for r in roles if r["secret"] == "md5"]
    keep_md5 = [r for r in md5 if r not in rehashed]
    source = facts.get("hba_file") or "pg_hba.conf"
    current = hba.rules(facts["hba_text"], source=source)
    opts = options or hba.HbaOptions(server_major=facts.get("major") or 15)
    opts.md5_roles = sorted(r for r in keep_md5 if hbamatch.can_write_name(r))
    opts.role_groups = groups
    opts.replication_roles = sorted(r["name"] for r in roles if r["replication"] or r["superuser"])
    after = hba.rules(hba.enable_hostssl(facts["hba_text"], opts, source=source), source=source)

    remote = []
    for role in roles:
        found = access.remote_rules(current, role["name"], groups)
        if role["secret"] == "none":
            # Without a password only methods that ask for none (trust, cert, ident...) let it in.
            found = [r for r in found if r.method not in hba.PASSWORD_METHODS]
        if found:
            remote.append({"role": role["name"], "secret": role["secret"],
                           "rules": [{"line": r.lineno, "type": r.type, "method": r.method} for r in found]})
    remote_names = {r["role"] for r in remote}

    sessions = []
    for session in facts.get("sessions", []):
        if session.get("application") == AGENT_APPLICATION:
            continue
        entry = dict(session)
        entry["replication"] = session.get("backend_type") == "walsender"
        entry["loopback"] = _is_loopback(session["address"])
        if session.get("tls") or entry["loopback"]:
            entry["after"] = "unchanged"
        else:
            match = access.first_match(after, session.get("database") or "", session["user"], session["address"],
                                         False, groups, replication=entry["replication"] and not session.get("database"))
            admitted = access.admits(match)
            entry["after"] = "unknown" if admitted is None else ("plaintext-rule" if admitted else "refused")
            if match.rule is not None:
                entry["after_rule"] = " ".join(f.raw for f in match.rule.fields)
        sessions.append(entry)
    plaintext = [s for s in sessions if s.get("tls") is False and not s["loopback"]]
    split = lockout.classify_sessions(plaintext, facts.get("offered_at"), "postgres")

    needs = []
    for name in opts.md5_roles:
        if name in remote_names and name not in CLUSTER_ROLES:
            needs.append(lockout.pg_md5_role(name, client.ident(name), pgpool=True))
    needs.extend(split["needs_action"])
    blockers = list(split["blockers"])
    for name in keep_md5:
        if not hbamatch.can_write_name(name) and name in remote_names:
            blockers.append({"who": name, "layer": "postgres", "why": "its md5 password needs a rule of its own, "
                             "and its name cannot be written into pg_hba.conf", "fix": "reset its password "
                             "(\\password) before enable, or pass --enforce-anyway"})
    report = {
        "role": "postgres", "version": facts.get("version"), "primary": not facts.get("in_recovery"),
        "ssl": facts.get("ssl"), "tls_offered_since": facts.get("offered_at"),
        "login_roles": [r["name"] for r in roles],
        "md5_roles": md5, "scram_roles": [r["name"] for r in roles if r["secret"] == "scram"],
        "no_password_roles": [r["name"] for r in roles if r["secret"] == "none"],
        "md5_rules_after_enable": opts.md5_roles, "remote_roles": remote,
        "sessions_without_tls": plaintext, "sessions": len(sessions),
        # Rules enable leaves alone that still let remote clients in without TLS (lines of today's file).
        "plaintext_rules_kept": [{"line": r.lineno, "type": r.type, "user": r.user, "address": r.address}
                                 for r in current if r.type in ("hostnossl", "hostnogssenc")
                                 and not hba.is_loopback(r) and r.method != "reject"],
        "needs_action": needs, "blockers": blockers,
    }
    if facts.get("in_recovery"):
        receiver = facts.get("wal_receiver")
        report["replication"] = {"side": "standby", "status": receiver["status"] if receiver else "not running",
                                 "primary": _conninfo_value(receiver["conninfo"], "host") if receiver else None,
                                 "sslmode": _conninfo_value(receiver["conninfo"], "sslmode") if receiver else None}
    else:
        report["replication"] = {"side": "primary", "standbys": facts.get("standbys", [])}
    return report


def _is_loopback(address: str) -> bool:
    ip = access.parse_ip(address)
    return ip is not None and ip.is_loopback
