"""The postgres role: offer TLS (postgresql.conf), use it (standby conninfo), require it (pg_hba).

Everything is applied with a reload: PostgreSQL >= 10 loads SSL settings on SIGHUP. Each run checks
the files with the server's own views before the reload and proves the result with a handshake that
must serve our certificate afterwards; any failure puts the files of this run back and reloads again.
"""

import os
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio, nodeos, state
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import base, common, statusschema
from dbtls_agent.roles.postgres import (
    accounts,
    apply,
    client,
    lockout,
    secretsync,
    server,
    standbytls,
    tlsprobe,
)
from dbtls_agent.roles.postgres import conf as pgconf
from dbtls_agent.roles.postgres import disable as postgres_disable
from dbtls_agent.roles.postgres import hba as pghba

ROLE = apply.ROLE
STAGES = {"offer": ["offer"], "use": ["use"], "require": ["require"], "all": ["offer", "use", "require"]}
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"
STREAM_WAIT_S = 60.0


def detect() -> Optional[Dict[str, Any]]:
    return server.facts()


def wanted_params(ctx: base.Context, major: int) -> Dict[str, Any]:
    params = {"ssl": True, "ssl_cert_file": ctx.server_cert(), "ssl_key_file": ctx.server_key(),
              "ssl_ca_file": ctx.server_root(), "ssl_ciphers": CIPHERS, "ssl_prefer_server_ciphers": True,
              "password_encryption": "scram-sha-256" if major >= 10 else "md5"}  # type: Dict[str, Any]
    if major >= 12:
        params["ssl_min_protocol_version"] = ctx.opt("min_tls") or "TLSv1.2"
    return params


def hba_options(ctx: base.Context, major: int) -> pghba.HbaOptions:
    return pghba.HbaOptions(keep_md5_compat=bool(ctx.opt("keep_md5_compat")),
                            client_cert_auth=bool(ctx.opt("client_cert_auth")),
                            no_client_cert_addresses=ctx.opt("no_client_cert_address") or [],
                            server_major=major, flavor=pghba.POSTGRESQL)


def _alter_system(ctx: base.Context, cs: Any, info: Dict[str, Any], sql: str, record: Dict[str, Any]) -> None:
    """Run ALTER SYSTEM with postgresql.auto.conf backed up first and our result recorded."""
    cs.backup(info["auto_conf"])
    client.psql(sql, os_user=server.SERVICE_USER)
    cs.write(info["auto_conf"], fsio.read_bytes(info["auto_conf"]) or b"")
    common.save_extra(ctx, ROLE, record)


def enable(ctx: base.Context) -> Dict[str, Any]:
    info = server.facts(require_running=True) or {}
    major = info["major"]
    if major < 10:
        raise AgentError("PostgreSQL {} cannot turn TLS on with a reload; version 10 or newer is needed".format(
            info["version"]))
    ctx.require_certs()
    stages = STAGES[ctx.stage]
    cs = ctx.changeset(ROLE)
    journal = ctx.start_journal(ROLE)
    result = {"role": ROLE, "stage": ctx.stage, "changed": False, "files": [], "action": "none",
              "alter_system_reset": [], "rehashed": [], "md5_roles": [], "verify": None,
              "resumed": journal.resumed, "in_recovery": info["in_recovery"],
              "version": info["version"]}  # type: Dict[str, Any]
    primary = not info["in_recovery"]
    if primary and secretsync.close_leftover(state.state_dir(ctx.cert_dir), os_user=server.SERVICE_USER):
        ctx.say("synchronous replication that a stopped run had left on is off again")
    passwords = accounts.with_webadmin(ctx.passwords)
    secrets = client.role_secrets()
    todo = []  # type: List[str]
    # Passwords are checked against the stored hashes as early as the offer stage (a wrong one is an
    # error before anything changes), but roles are re-hashed only with the require stage: Pgpool
    # can log in to a SCRAM-stored role only once its own offer stage wrote AES pool_passwd entries,
    # which in the cluster order comes after the servers' offer.
    if primary and ("offer" in stages or "require" in stages):
        todo, skipped = accounts.plan_rehash(secrets, passwords)
        if "webadmin" not in passwords:
            ctx.say("webadmin's password is unknown (no jcm getPswd, none on stdin); it was not re-hashed")
    extra = common.load_extra(ctx, ROLE)
    # Roles still holding md5 secrets get per-role md5 rules; a login that cannot be kept working
    # stops the require stage here, before anything changes (lockout.py).
    lock, options = lockout.plan(ctx, info, hba_options(ctx, major), todo, extra, "require" in stages)
    offered_before = lockout.ssl_on_since(info) if "offer" in stages and "tls_offered_at" not in extra \
        else None
    conf_text = common.read_required(info["config_file"], owner=server.SERVICE_USER)
    hba_text = common.read_required(info["hba_file"], owner=server.SERVICE_USER)
    new_conf, new_hba = conf_text, hba_text
    if "offer" in stages:
        new_conf = pgconf.set_params(conf_text, wanted_params(ctx, major), source=info["config_file"])
    if "require" in stages:
        new_hba = pghba.enable_hostssl(hba_text, options, source=info["hba_file"])
        result["md5_rules"] = pghba.md5_rule_roles(new_hba, options.md5_roles, source=info["hba_file"])
    journal.step("preflight")

    before = {}  # type: Dict[str, bytes]
    log_offset = nodeos.file_size(info.get("log_file"))
    # When this run also turns the remote rules to scram-sha-256 (stage require, e.g. --stage all on a
    # single node), the roles must hold SCRAM secrets before that reload, or their new logins fail
    # until the re-hash below. A SCRAM secret still works under the old md5 rules, so doing it first
    # is harmless; a failed run gives the md5 secrets back (_rollback).
    rehash_first = "require" in stages
    try:
        if rehash_first:
            _rehash(ctx, todo, passwords, secrets, extra, result, info["auto_conf"])
        for path, old, new in ((info["config_file"], conf_text, new_conf), (info["hba_file"], hba_text, new_hba)):
            if old != new:
                before[path] = old.encode("utf-8", "surrogateescape")
                cs.write(path, new.encode("utf-8", "surrogateescape"))
                result["files"].append({"path": path, "changed": True})
        journal.step("write-files")
        problems = server.file_setting_errors() + server.hba_errors(major)
        if problems:
            raise AgentError("the server rejects the new configuration: " + "; ".join(problems[:3]))
        if "offer" in stages:
            _win_over_auto_conf(ctx, cs, info, list(wanted_params(ctx, major)), extra, before, result)
        if "use" in stages and info["in_recovery"]:
            _standby_conninfo(ctx, cs, info, extra, before, result)
        journal.step("alter-system")
        # A re-issue changes no config file, only the certificate: reload when the server still
        # serves another certificate than ours, so the same command also swaps certificates.
        if before or journal.resumed or not apply.serves_ours(ctx):
            result["action"] = apply.reload_and_wait(ctx, info)
        journal.step("apply")
        # PostgreSQL logs "SSL configuration was not reloaded" and keeps its old TLS state when it
        # cannot load the new files: no need to wait out the timeout then.
        result["verify"] = apply.verify_tls(ctx, give_up=lambda: apply.SSL_NOT_RELOADED in nodeos.log_tail(
            info.get("log_file"), log_offset))
        if not result["verify"]["ok"]:
            why = apply.log_error(info, log_offset)
            raise AgentError("TLS check failed after the reload: {}{}".format(
                result["verify"]["error"], " (server log: {})".format(why) if why else ""))
        if result["rehashed"]:
            apply.wait_standbys_replayed(ctx)
        if result.get("conninfo_changed"):
            result["replication"] = _wait_streaming(info, result["standby_sslmode"])
        journal.step("verify")
    except BaseException:
        _rollback(ctx, cs, info, before, extra, result["rehashed"])
        raise
    if "offer" in stages and lockout.record_offered(extra, offered_before):
        common.save_extra(ctx, ROLE, extra)
    journal.step("rehash")
    secrets = client.role_secrets()
    pending = [] if rehash_first else todo
    result["rehash_at_require"] = pending
    result["md5_roles"] = [r for r in accounts.md5_roles(secrets) if r not in pending]
    result["needs_action"] = lock["needs_action"]
    if "require" in stages:
        for line in lockout.messages(lock, result["md5_rules"]):
            ctx.say(line)
        if lock["blockers"]:
            result["enforced_anyway"] = lock["blockers"]
    elif result["md5_roles"]:
        ctx.say("{} role(s) still have md5 passwords; the require stage gives each a md5 rule of its own, so "
                "they keep logging in (over TLS) until their password is set again: {}".format(
                    len(result["md5_roles"]), ", ".join(result["md5_roles"])))
    if primary:
        result["replication"] = result.get("replication") or replication_ssl()
    result["changed"] = bool(before) or bool(result["rehashed"])
    result["messages"] = ctx.messages
    journal.step("done")
    return result


def _rehash(ctx: base.Context, todo: List[str], passwords: Dict[str, str], secrets: Dict[str, Optional[str]],
            extra: Dict[str, Any], result: Dict[str, Any], auto_conf: str) -> None:
    """Store SCRAM secrets for ``todo`` (md5 roles whose password we were given), in one transaction
    the standbys apply before the primary's logins see it (secretsync)."""
    if not todo:
        return
    statements = []
    for user in todo:
        verifier = client.scram_verifier(passwords[user])
        # The md5 secret is kept (root-only state dir) so disable can give Pgpool's md5 entries a match again.
        extra.setdefault("rehashed", {})[user] = {"original": secrets[user], "written": verifier}
        statements.append("ALTER ROLE {} PASSWORD {}".format(client.ident(user), client.literal(verifier)))
    common.save_extra(ctx, ROLE, extra)
    synchronous, why = secretsync.apply(statements, auto_conf, state.state_dir(ctx.cert_dir),
                                        os_user=server.SERVICE_USER)
    result["rehashed"].extend(todo)
    result["rehash_synchronous"] = why
    if not synchronous and why != "no standby streams":
        ctx.say("the SCRAM re-hash was committed without waiting for the standbys ({}); logins through "
                "Pgpool-II may fail until they replay it".format(why))


def _win_over_auto_conf(ctx: base.Context, cs: Any, info: Dict[str, Any], names: List[str],
                        extra: Dict[str, Any], before: Dict[str, bytes], result: Dict[str, Any]) -> None:
    """ALTER SYSTEM RESET any of our settings that postgresql.auto.conf (or a later file) overrides."""
    winners = server.winning_sources(names)
    conf = os.path.realpath(info["config_file"])
    auto = os.path.realpath(info["auto_conf"])
    for name in sorted(winners):
        source = os.path.realpath(winners[name])
        if source == conf:
            continue
        if source != auto:
            raise AgentError("{} is set in {}, which is read after {}; remove it there".format(name, source, conf))
        auto_text = fsio.read_text(info["auto_conf"]) or ""
        extra.setdefault("alter_system", {}).setdefault(name, pgconf.get(auto_text, name))
        if info["auto_conf"] not in before:
            before[info["auto_conf"]] = fsio.read_bytes(info["auto_conf"]) or b""
        _alter_system(ctx, cs, info, "ALTER SYSTEM RESET {}".format(name), extra)
        result["alter_system_reset"].append(name)
        ctx.say("ALTER SYSTEM value of {} overrode postgresql.conf; it was reset (disable puts it back)".format(name))


def _standby_conninfo(ctx: base.Context, cs: Any, info: Dict[str, Any], extra: Dict[str, Any],
                      before: Dict[str, bytes], result: Dict[str, Any]) -> None:
    """Make the walreceiver verify the primary's certificate and name (standbytls; reloadable from 13)."""
    if info["major"] < 13:
        ctx.say("PostgreSQL {} needs a restart to change primary_conninfo; the standby keeps sslmode=prefer, "
                "which uses TLS once it reconnects".format(info["major"]))
        return
    current = client.scalar("SHOW primary_conninfo", os_user=server.SERVICE_USER) or ""
    updates, weaker = standbytls.settings(current, info["major"], ctx.server_root())
    if weaker:
        ctx.say(weaker)
    result["standby_sslmode"] = updates["sslmode"]
    wanted = accounts.set_conninfo(current, updates)
    if wanted == current:
        return
    extra.setdefault("alter_system", {}).setdefault("primary_conninfo", current)
    if info["auto_conf"] not in before:
        before[info["auto_conf"]] = fsio.read_bytes(info["auto_conf"]) or b""
    _alter_system(ctx, cs, info, "ALTER SYSTEM SET primary_conninfo = {}".format(client.literal(wanted)), extra)
    result["conninfo_changed"] = True
    result["files"].append({"path": info["auto_conf"], "changed": True})


def _wait_streaming(info: Dict[str, Any], sslmode: str = "verify-ca") -> List[Dict[str, Any]]:
    def streaming() -> Any:
        rows = client.psql("SELECT status, conninfo FROM pg_stat_wal_receiver", os_user=server.SERVICE_USER)
        return rows if rows and rows[0][0] == "streaming" and standbytls.sslmode_of(rows[0][1]) == sslmode else None
    rows = nodeos.poll(streaming, STREAM_WAIT_S, 0.2)
    if not rows:
        raise AgentError("the standby did not resume streaming with sslmode={} within {:.0f}s; check the "
                         "primary's certificate and this node's root.crt".format(sslmode, STREAM_WAIT_S))
    return [{"status": rows[0][0], "sslmode": sslmode}]


def replication_ssl() -> List[Dict[str, Any]]:
    rows = client.psql("SELECT coalesce(host(r.client_addr), ''), coalesce(r.usename::text, ''), s.ssl::text, "
                         "coalesce(s.version, '') FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
                         os_user=server.SERVICE_USER)
    return [{"client_addr": a, "usename": u, "ssl": s == "true", "version": v or None} for a, u, s, v in rows]


def _rollback(ctx: base.Context, cs: Any, info: Dict[str, Any], before: Dict[str, bytes],
              extra: Dict[str, Any], rehashed: Optional[List[str]] = None) -> None:
    """Put back what this run wrote and reload, so the running server never keeps a broken file.

    Files first, md5 secrets last: a SCRAM secret works under the restored md5 rules, an md5 secret
    does not under the scram-sha-256 rules this run may have loaded.
    """
    if before:
        for path, data in before.items():
            cs.write(path, data)
        common.save_extra(ctx, ROLE, extra)
        try:
            apply.reload_and_wait(ctx, info)
        except AgentError:
            pass  # the caller reports the run's own error
    records = extra.get("rehashed") or {}
    for user in rehashed or []:
        record = records.pop(user, None)
        if record is not None:
            try:
                client.psql("ALTER ROLE {} PASSWORD {}".format(client.ident(user), client.literal(record["original"])),
                              os_user=server.SERVICE_USER)
            except AgentError:
                pass  # best effort: the run's own error is what the user must see
    if rehashed:
        if not records:
            extra.pop("rehashed", None)
        common.save_extra(ctx, ROLE, extra)


def disable(ctx: base.Context) -> Dict[str, Any]:
    """Restore what enable changed (``--stage require``: only the rules and the md5 secrets)."""
    return postgres_disable.disable(ctx)


def status(ctx: base.Context) -> Dict[str, Any]:
    info = server.facts(require_running=False)
    if info is None:
        raise AgentError("no PostgreSQL server on this node")
    conf = fsio.read_text(info["config_file"]) or ""
    hba = fsio.read_text(info["hba_file"]) or ""
    stages = []
    if pgconf.is_managed(conf):
        stages.append("offer")
    if pghba.disable_hostssl(hba) != hba:
        stages.append("require")
    tls = None  # type: Optional[Dict[str, Any]]
    if info["running"] and os.path.isfile(ctx.server_cert()):
        tls = apply.verify_tls(ctx, wait_s=0)
    elif info["running"]:
        tls = tlsprobe.probe(apply.own_host(), 5432, None)
    details = {}  # type: Dict[str, Any]
    if info["running"] and not info["in_recovery"]:
        details["replication"] = replication_ssl()
    return statusschema.document(ROLE, info.get("version"), bool(info["running"]), stages,
                                 statusschema.handshake(tls), common.certificates(ctx), **details)
