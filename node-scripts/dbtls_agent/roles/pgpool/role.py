"""The pgpool role: TLS to clients and backends (pgpool.conf + key + pool_passwd), then pool_hba.

Pgpool-II 4.0-4.7 builds its TLS context once at start, so ``ssl`` and every ``ssl_*`` setting (and
the AES key file) need a restart; pool_hba.conf, enable_pool_hba and pool_passwd contents reload.
The version decides, and a run that changes nothing start-only only reloads. Afterwards a handshake
through Pgpool must serve our certificate (Pgpool starts without TLS on bad files), webadmin must log
in with verify-full, and the backend session Pgpool opened for it must be encrypted.
"""

import os
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio, nodeos
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import base, common, statusschema
from dbtls_agent.roles.pgpool import allow, facts, opensslconf, poolkey, poolpasswd
from dbtls_agent.roles.pgpool import hba as poolhba
from dbtls_agent.roles.postgres import accounts, apply, client, tlsprobe
from dbtls_agent.roles.postgres import conf as pgconf
from dbtls_agent.roles.postgres import hba as pghba
from dbtls_agent.roles.postgres import role as postgres

ROLE = "pgpool"
CONF_DIR = facts.CONF_DIR
STAGES = {"offer": ["offer"], "use": ["offer"], "require": ["require"], "all": ["offer", "require"]}
RESTART_WAIT_S = 60.0
#: What the plaintext pg_hba probe of disable sends as password (see _guard_backends_plaintext).
PROBE_PASSWORD = "dbtls-probe-not-a-password"


def detect() -> Optional[Dict[str, Any]]:
    return facts.detect()


def wanted_params(ctx: base.Context) -> Dict[str, Any]:
    return {"ssl": True, "ssl_key": ctx.server_key(), "ssl_cert": ctx.server_cert(),
            "ssl_ca_cert": ctx.server_root(), "ssl_ciphers": postgres.CIPHERS, "ssl_prefer_server_ciphers": True,
            "enable_pool_hba": True, "pool_passwd": "pool_passwd"}


def _known_passwords(ctx: base.Context, conf_text: str) -> Dict[str, str]:
    passwords = accounts.with_webadmin(ctx.passwords)
    if "pgpool" not in passwords:
        for name in ("sr_check_password", "health_check_password"):
            value = pgconf.get(conf_text, name)
            if value and poolpasswd.secret_kind(value) == poolpasswd.PLAIN and not value.startswith("md5"):
                passwords["pgpool"] = value
                break
    if "webadmin" not in passwords:
        raise AgentError("webadmin's password is needed for its pool_passwd entry: pass it with --passwords-stdin")
    return passwords


def _check_passwords(text: str, passwords: Dict[str, str], key: Optional[bytes]) -> None:
    """Refuse a password that does not match the entry Pgpool already has for that user."""
    for user, password in passwords.items():
        entry = poolpasswd.get_entry(text, user)
        if entry is None:
            continue
        if entry.kind == poolpasswd.MD5 and entry.secret != poolpasswd.md5_secret(user, password):
            raise AgentError("the password given for {} does not match its pool_passwd entry; nothing was changed".format(user))
        if entry.kind == poolpasswd.AES and key is not None:
            try:
                same = poolpasswd.decrypt_password(entry.secret, key) == password
            except AgentError:
                same = True  # written under another key: cannot tell, the new entry replaces it
            if not same:
                raise AgentError("the password given for {} does not match its pool_passwd entry; "
                                 "nothing was changed".format(user))


def _log_path(conf_text: str) -> Optional[str]:
    pid_file = pgconf.get(conf_text, "pid_file_name") or "/var/run/pgpool/pgpool.pid"
    target = fsio.process_stderr_file(fsio.read_text(pid_file) or "")
    if target:
        return target
    return "/var/log/pgpool/pgpool.log" if os.path.isfile("/var/log/pgpool/pgpool.log") else None


def enable(ctx: base.Context) -> Dict[str, Any]:
    info = detect()
    if info is None:
        raise AgentError("no Pgpool-II on this node")
    if not info["running"]:
        raise AgentError("Pgpool-II is not running on this node; start it first (jem service start)")
    ctx.require_certs()
    stages = STAGES[ctx.stage]
    cs = ctx.changeset(ROLE)
    journal = ctx.start_journal(ROLE)
    conf_path, hba_path = info["config_file"], info["hba_file"]
    conf_text = common.read_required(conf_path)
    hba_text = common.read_required(hba_path)
    passwd_path = poolkey.pool_passwd_path(conf_path, conf_text)
    passwd_bytes = fsio.read_bytes(passwd_path)
    passwd_text = (passwd_bytes or b"").decode("utf-8", "surrogateescape")
    passwords = _known_passwords(ctx, conf_text)
    key_file = poolkey.key_path()
    current_key = fsio.read_bytes(key_file)
    _check_passwords(passwd_text, passwords, poolpasswd.key_from_file_text(current_key) if current_key else None)
    result = {"role": ROLE, "stage": ctx.stage, "changed": False, "files": [], "action": "none",
              "version": info["version"], "pool_passwd_users": [], "key_file_created": False,
              "resumed": journal.resumed}  # type: Dict[str, Any]
    new_conf, new_hba = conf_text, hba_text
    if "offer" in stages:
        new_conf = pgconf.set_params(conf_text, wanted_params(ctx), source=conf_path)
    replaced = passwords if "offer" in stages else {}  # users whose entries this run makes AES
    result["needs_action"] = poolhba.needs_action(passwd_text, replaced)
    if "require" in stages:
        # md5 pool_passwd entries keep working through per-role md5 rules (hba.py).
        options = poolhba.options(bool(ctx.opt("keep_md5_compat")), bool(ctx.opt("client_cert_auth")), passwd_text,
                                  replaced)
        new_hba = pghba.enable_hostssl(hba_text, options, source=hba_path)
        result["md5_rules"] = pghba.md5_rule_roles(new_hba, options.md5_roles, pghba.PGPOOL, hba_path)
        poolhba.remember(ctx.cert_dir, bool(ctx.opt("keep_md5_compat")), bool(ctx.opt("client_cert_auth")))
    journal.step("preflight")
    before = {}  # type: Dict[str, Optional[bytes]]
    restart = False
    log_path = _log_path(conf_text)
    log_offset = nodeos.file_size(log_path)
    try:
        for path, old, new in ((conf_path, conf_text, new_conf), (hba_path, hba_text, new_hba)):
            if old != new:
                before[path] = old.encode("utf-8", "surrogateescape")
                cs.write(path, new.encode("utf-8", "surrogateescape"))
                result["files"].append({"path": path, "changed": True})
        changed_params = _changed_params(conf_text, new_conf)
        restart = any(p in facts.start_only(info["version"]) for p in changed_params)
        if "offer" in stages:
            result["openssl"] = opensslconf.write_files(cs, before, min_tls=ctx.opt("min_tls"))
            restart = restart or result["openssl"]["changed"]  # OPENSSL_CONF is read at start
            if result["openssl"]["min_tls_note"]:
                ctx.say("pgpool: " + result["openssl"]["min_tls_note"])
        if "offer" in stages:
            before.setdefault(key_file, current_key)
            key, old_key, created = poolkey.ensure_key(cs)
            if created:
                result["key_file_created"] = True
                result["files"].append({"path": key_file, "changed": True})
                restart = True  # Pgpool reads its key once, at start
            else:
                before.pop(key_file)
            new_passwd, users = poolkey.set_entries(passwd_text, passwords, key, old_key)
            result["pool_passwd_users"] = users
            if new_passwd != passwd_text or passwd_bytes is None:
                before[passwd_path] = passwd_bytes
                cs.write(passwd_path, new_passwd.encode("utf-8", "surrogateescape"), 0o600,
                         fsio.resolve_owner(poolkey.SERVICE_USER))
                result["files"].append({"path": passwd_path, "changed": True})
        journal.step("write-files")
        if before or journal.resumed:
            # A resumed run finds its files already written by the killed one, which may have died
            # before Pgpool restarted: restart, since TLS settings and the key load only at start.
            restart = restart or bool(ctx.opt("upstream_mode")) or (journal.resumed and not before)
            result["action"] = "restart" if restart else "reload"
            nodeos.service(result["action"])
        journal.step("apply")
        _verify(ctx, info, passwords, result, log_path, log_offset)
        journal.step("verify")
    except BaseException:
        _rollback(cs, before, restart)
        raise
    result["changed"] = bool(before)
    result["messages"] = ctx.messages
    journal.step("done")
    return result


def _changed_params(old: str, new: str) -> List[str]:
    a, b = pgconf.managed_params(old), pgconf.managed_params(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _verify(ctx: base.Context, info: Dict[str, Any], passwords: Dict[str, str], result: Dict[str, Any],
            log_path: Optional[str], log_offset: int) -> None:
    port = info.get("port") or 5432

    def refused() -> List[str]:
        text = nodeos.log_tail(log_path, log_offset)
        return [ln.strip() for ln in text.splitlines() if "could not load" in ln or "private key" in ln]
    # Pgpool logs why it started without TLS: no need to wait out the timeout then.
    result["verify"] = apply.verify_tls(ctx, port, RESTART_WAIT_S, give_up=lambda: bool(refused()))
    if not result["verify"]["ok"]:
        why = refused()
        raise AgentError("TLS check through Pgpool failed: {}{}".format(
            result["verify"]["error"], " (pgpool log: {})".format(why[-1]) if why else ""))
    host = result["verify"]["host"]
    rows = client.psql("SELECT ssl::text, coalesce(version, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                         os_user="root", host=host, port=port, db_user="webadmin", password=passwords["webadmin"],
                         extra_conninfo="sslmode=verify-full sslrootcert={}".format(ctx.server_root()))
    result["login"] = "ok"
    result["backend_ssl"] = bool(rows) and rows[0][0] == "true"
    if not result["backend_ssl"]:
        ctx.say("Pgpool's session on the backend is not encrypted: enable TLS on the PostgreSQL nodes first")


def _rollback(cs: Any, before: Dict[str, Optional[bytes]], restarted: bool) -> None:
    if not before:
        return
    for path, data in before.items():
        if data is None:
            try:
                fsio.remove(path)
            except AgentError:
                pass
            cs.forget(path)
        else:
            cs.write(path, data)
    try:
        nodeos.service("restart" if restarted else "reload")
    except AgentError:
        pass


def disable(ctx: base.Context) -> Dict[str, Any]:
    info = detect()
    if info is None:
        raise AgentError("no Pgpool-II on this node")
    cs = ctx.changeset(ROLE)
    conf_path = info["config_file"]
    if cs.entries and not ctx.opt("force"):
        _guard_backends_plaintext(fsio.read_text(conf_path) or "")
    journal = ctx.start_journal(ROLE)
    old_params = pgconf.managed_params(fsio.read_text(conf_path) or "")
    key_before = fsio.read_bytes(info["key_file"])
    inverses = {conf_path: lambda t: pgconf.revert(t, source=conf_path),
                info["hba_file"]: lambda t: pghba.disable_hostssl(t, source=info["hba_file"])}
    if info.get("pool_passwd"):
        inverses[info["pool_passwd"]] = _pool_passwd_inverse(cs, info["pool_passwd"])
    allow.stash_before_disable(ctx.cert_dir, info.get("pool_passwd"))
    files = common.restore_all(ctx, cs, inverses)
    kept = allow.restore_after_disable(ctx.cert_dir, info.get("pool_passwd"), ctx.say)  # users allowed since enable
    journal.step("write-files")
    changed = any(f["result"] != "unchanged" for f in files)
    new_params = pgconf.managed_params(fsio.read_text(conf_path) or "")
    openssl_removed = opensslconf.removed(files)  # always: it also deletes the drop-in folder we made
    restart = any(old_params.get(k) != new_params.get(k) for k in facts.start_only(info["version"])) or \
        fsio.read_bytes(info["key_file"]) != key_before or openssl_removed
    action = "none"
    if (changed or journal.resumed) and info["running"]:  # see enable: a killed run's files look done
        action = "restart" if restart or journal.resumed or ctx.opt("upstream_mode") else "reload"
        nodeos.service(action)
    journal.step("apply")
    result = {"role": ROLE, "changed": changed, "files": files, "action": action, "kept_users": kept,
              "certs_removed": common.remove_certs(ctx) if ctx.opt("remove_certs") else False,
              "messages": ctx.messages}
    journal.step("done")
    return result


def _guard_backends_plaintext(conf_text: str) -> None:
    """Refuse to turn Pgpool's TLS off while a backend refuses its plaintext logins (hostssl only).

    Pgpool's health check would then fail and detach every such backend. Only the pg_hba answer
    matters (it comes before any password), so the probe sends a dummy password, never the real one:
    it travels without TLS, to whatever address pgpool.conf names (a file the Pgpool account writes).
    """
    user = pgconf.get(conf_text, "health_check_user") or pgconf.get(conf_text, "sr_check_user") or "pgpool"
    password = PROBE_PASSWORD  # never prompts; a refused password is not what we look for
    for host, port in facts.backends(conf_text):
        try:
            client.psql("SELECT 1", os_user="root", host=host, port=port, db_user=user, password=password,
                          extra_conninfo="sslmode=disable", timeout=15)
        except AgentError as exc:
            if "no pg_hba.conf entry" in str(exc):
                raise AgentError("backend {}:{} refuses plaintext logins of Pgpool's health-check user {} "
                                 "(it requires TLS): disable the PostgreSQL nodes first (disable --role postgres), "
                                 "or pass --force; nothing was changed".format(host, port, user)) from None


def _pool_passwd_inverse(cs: Any, path: str) -> Any:
    """Put back the original entry (or none) for every user whose line differs from the original."""
    original = (cs.original(path) or b"").decode("utf-8", "surrogateescape") if os.path.abspath(path) in cs.entries else ""

    def inverse(text: str) -> str:
        ours = {e.user for e in poolpasswd.parse_pool_passwd(text) if e.kind == poolpasswd.AES}
        for user in sorted(ours):
            entry = poolpasswd.get_entry(original, user)
            text = poolpasswd.set_entry(text, user, entry.secret) if entry else poolpasswd.remove_entry(text, user)
        return text
    return inverse


def status(ctx: base.Context) -> Dict[str, Any]:
    info = detect()
    if info is None:
        raise AgentError("no Pgpool-II on this node")
    conf = fsio.read_text(info["config_file"]) or ""
    hba = fsio.read_text(info["hba_file"]) or ""
    stages = (["offer"] if pgconf.is_managed(conf) else []) + (["require"] if pghba.disable_hostssl(hba) != hba else [])
    port = info.get("port") or 5432
    tls = None
    if info["running"]:
        tls = apply.verify_tls(ctx, port, 0) if os.path.isfile(ctx.server_cert()) else \
            tlsprobe.probe(apply.own_host(), port, None)
    return statusschema.document(ROLE, info["version"], bool(info["running"]), stages, statusschema.handshake(tls),
                                 common.certificates(ctx))
