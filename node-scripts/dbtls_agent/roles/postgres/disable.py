"""Turning the postgres role off: all of it, or only its require stage (``disable --stage require``).

The stack is taken down in the reverse of the enable order: servers
stop *requiring* TLS and SCRAM first, then the proxies drop TLS, then the servers stop offering it.

Pgpool-II opens one session per backend for each client and insists that every backend asks for
the same authentication method. A backend asks for SCRAM when its rule says scram-sha-256 or when
the role's stored secret is SCRAM (an md5 rule upgrades itself), and for md5 only under an md5 rule
with an md5 secret; a scram-sha-256 rule with an md5 secret refuses the login. So the require stage
comes off in two steps: every node's pg_hba.conf goes back to its md5 rules while the secrets are
still SCRAM (all backends keep asking for SCRAM), and only then, on the primary, the md5 secrets
come back, committed so that the standbys apply them before the primary's own logins see them
(secretsync): all backends switch to md5 together. Pgpool keeps AES entries for its users until its
own disable, and those answer either method.
"""

import os
from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent import state
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import base, common, replwait
from dbtls_agent.roles.postgres import apply, client, conf, hba, secretsync, server

ROLE = apply.ROLE
#: Stages ``disable --stage`` accepts for this role.
STAGES = ("require", "all")
STANDBY_WAIT_S = 60.0


def disable(ctx: base.Context) -> Dict[str, Any]:
    info = server.facts(require_running=False)
    if info is None:
        raise AgentError("no PostgreSQL server on this node")
    if ctx.stage not in STAGES:
        raise AgentError("disable --stage {} is not supported for postgres (choose {})".format(
            ctx.stage, " or ".join(STAGES)))
    cs = ctx.changeset(ROLE)
    journal = ctx.start_journal(ROLE)
    extra = common.load_extra(ctx, ROLE)
    if info["running"] and not info["in_recovery"]:
        if secretsync.close_leftover(state.state_dir(ctx.cert_dir), os_user=server.SERVICE_USER):
            ctx.say("synchronous replication that a stopped run had left on is off again")
        replwait.remember_pg_now(ctx.cert_dir)  # 'replication wait' names them after the standbys' disable
    hba_inverse = {info["hba_file"]: lambda t: hba.disable_hostssl(t, source=info["hba_file"])}
    if ctx.stage == "require":
        files = _restore_hba(ctx, cs, info, hba_inverse)
    else:
        inverse = dict(hba_inverse)
        inverse[info["config_file"]] = lambda t: conf.revert(t, source=info["config_file"])
        files = common.restore_all(ctx, cs, inverse, skip=[info["auto_conf"]])
        auto = _restore_auto_conf(ctx, cs, info, extra)
        if auto:
            files.append(auto)
    journal.step("write-files")
    changed = any(f["result"] != "unchanged" for f in files)
    action = "none"
    # A disable killed after restoring the files left the server running the TLS settings it loaded
    # earlier; the files look unchanged to the re-run, so the journal decides the reload.
    if (changed or journal.resumed) and info["running"]:
        action = apply.reload_and_wait(ctx, info)
        problems = server.file_setting_errors()
        if problems:
            ctx.say("the server reports configuration errors after disable: " + "; ".join(problems[:3]))
    # md5 secrets come back only once the md5 rules are live: before the reload, the scram-sha-256
    # rules would refuse them and Pgpool's health check would detach this backend for good.
    restored = []  # type: List[str]
    how = ""
    if info["running"] and not info["in_recovery"]:
        restored, how = _restore_secrets(ctx, extra, info["auto_conf"])
        if restored and ctx.stage == "require":
            # Pgpool's own disable comes next and brings back md5 pool_passwd entries, which cannot
            # answer a standby that still holds the SCRAM secret.
            apply.wait_standbys_replayed(ctx)
    journal.step("apply")
    result = {"role": ROLE, "stage": ctx.stage, "changed": changed or bool(restored), "files": files,
              "action": action, "secrets_restored": restored, "secrets_synchronous": how,
              "messages": ctx.messages}
    if action != "none" and info["in_recovery"] and ctx.stage == "all":
        result["replication_wait"] = _wait_own_receiver(ctx)
    if ctx.stage == "all":
        common.save_extra(ctx, ROLE, {})
        result["certs_removed"] = common.remove_certs(ctx) if ctx.opt("remove_certs") else False
    elif ctx.opt("remove_certs"):
        ctx.say("--remove-certs is ignored with --stage require: the server still offers TLS")
    journal.step("done")
    return result


def _wait_own_receiver(ctx: base.Context, timeout: float = STANDBY_WAIT_S) -> Dict[str, Any]:
    """A standby whose primary_conninfo came back restarts its WAL receiver: report when it streams
    again (never fatal: the files are restored either way; the message says what to check)."""
    waited = replwait.wait_pg(ctx.cert_dir, timeout)
    if not waited["ok"]:
        ctx.say("the WAL receiver does not stream {:.0f}s after disable ({}); check primary_conninfo".format(
            timeout, waited["replicas"][0]["state"] if waited["replicas"] else "?"))
    return waited


def _restore_hba(ctx: base.Context, cs: Any, info: Dict[str, Any], inverse: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Only pg_hba.conf back: TLS stays offered (postgresql.conf) and the standby keeps verifying."""
    path = os.path.abspath(info["hba_file"])
    if path not in cs.entries:
        return []
    outcome = common.restore_one(cs, path, inverse.get(info["hba_file"]))
    if outcome == "foreign-edit":
        raise AgentError("{} was changed by someone else since enable and dbtls cannot undo its own edit "
                         "there; restore it by hand from {}".format(path, cs.backups))
    if outcome == "inverse-edit":
        ctx.say("{} was edited by someone else after enable; only dbtls's own lines were removed".format(path))
    return [{"path": path, "result": outcome}]


def _restore_secrets(ctx: base.Context, extra: Dict[str, Any], auto_conf: str) -> Tuple[List[str], str]:
    """Give re-hashed roles their md5 secret back, unless their password was changed since: one
    transaction the standbys apply before the primary's logins see it (secretsync). Returns the
    roles and how the standbys were waited for."""
    rehashed = extra.get("rehashed") or {}
    if not rehashed:
        return [], ""
    current = client.role_secrets()
    restored = []
    statements = []
    for user, record in sorted(rehashed.items()):
        if current.get(user) != record["written"]:
            ctx.say("{}'s password was changed after enable; its new secret is kept".format(user))
            continue
        statements.append("ALTER ROLE {} PASSWORD {}".format(client.ident(user), client.literal(record["original"])))
        restored.append(user)
    why = ""
    if statements:
        synchronous, why = secretsync.apply(statements, auto_conf, state.state_dir(ctx.cert_dir),
                                           os_user=server.SERVICE_USER)
        if not synchronous and why != "no standby streams":
            ctx.say("the md5 secrets came back without waiting for the standbys ({}); logins through "
                    "Pgpool-II may fail until they replay them".format(why))
    extra.pop("rehashed", None)
    common.save_extra(ctx, ROLE, extra)
    return restored, why


def _restore_auto_conf(ctx: base.Context, cs: Any, info: Dict[str, Any], extra: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    path = os.path.abspath(info["auto_conf"])
    if path not in cs.entries:
        return None
    outcome = common.restore_one(cs, path, None)
    if outcome != "foreign-edit":
        return {"path": path, "result": outcome}
    # The server rewrites postgresql.auto.conf on every ALTER SYSTEM, so undo our settings one by one.
    if not info["running"]:
        raise AgentError("{} changed since enable and the server is not running to undo our ALTER SYSTEM "
                         "settings; start it and run disable again".format(path))
    for name, value in sorted((extra.get("alter_system") or {}).items()):
        sql = "ALTER SYSTEM RESET {}".format(name) if value is None else \
            "ALTER SYSTEM SET {} = {}".format(name, client.literal(value))
        client.psql(sql, os_user=server.SERVICE_USER)
    cs.forget(path)
    ctx.say("{} was changed by someone else after enable; our ALTER SYSTEM changes were undone one by one".format(path))
    return {"path": path, "result": "inverse-edit"}
