"""Role ``proxysql``: frontend and backend TLS on a ProxySQL node, through its admin interface.

Admin credentials come from the node (``/etc/proxysql.cnf``: ``admin_credentials``, ``mysql_ifaces``,
``datadir``) or from ``--passwords-stdin`` (``{"proxysql-admin": "user:password"}``) and reach the
client only through a 0600 defaults file. The frontend files ``proxysql-{ca,cert,key}.pem`` go into
the datadir (backed up first, restored on disable); the SQL plans and their checks are
:mod:`.plan`'s; the admin interface is :mod:`.admin`. The values before the first enable are recorded and put back by disable.
"""

import os
from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent import fsio, safepath, state
from dbtls_agent.crypto import der
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import common, statusschema
from dbtls_agent.roles.base import Context
from dbtls_agent.roles.proxysql import drain, report
from dbtls_agent.roles.proxysql import plan as proxysql_plan
from dbtls_agent.roles.proxysql.admin import Admin, admin_endpoint, read_settings
from dbtls_agent.state import ChangeSet

ROLE = "proxysql"
def detect() -> Optional[Dict[str, Any]]:
    path, settings = read_settings()
    if path is None:
        return None
    endpoint = admin_endpoint(settings)
    return {"role": ROLE, "config_file": path, "admin_port": endpoint["port"], "datadir": endpoint["datadir"]}


def _frontend_files(cert_dir: str) -> Dict[str, bytes]:
    """Leaf only in proxysql-cert.pem (ProxySQL reads the first block), CA in proxysql-ca.pem."""
    server = os.path.join(cert_dir, "server")
    data = {}
    for name in ("server.crt", "server.key", "root.crt"):
        content = fsio.read_bytes(os.path.join(server, name))
        if content is None:
            raise AgentError("{} is missing: install the certificates first (install-certs)".format(
                os.path.join(server, name)))
        data[name] = content
    leaf = data["server.crt"]
    end = leaf.find(b"-----END CERTIFICATE-----")
    if end >= 0:
        leaf = leaf[:end + len(b"-----END CERTIFICATE-----")] + b"\n"
    return {proxysql_plan.FRONTEND_CERT: leaf, proxysql_plan.FRONTEND_KEY: data["server.key"],
            proxysql_plan.FRONTEND_CA: data["root.crt"]}


def _datadir_owner(datadir: str, config_path: Optional[str] = None) -> Optional[Tuple[int, int]]:
    """Owner of the datadir, which the frontend files get. The datadir comes from proxysql.cnf:
    when an account other than root can change that file, a root-owned datadir is refused (the
    account could have named /etc/cron.d); one the account owns is its own business."""
    try:
        with safepath.open_dir(datadir) as directory:
            st = directory.st
    except OSError:
        raise AgentError("ProxySQL datadir {} does not exist".format(datadir)) from None
    cfg = fsio.read_with_stat(config_path)[1] if config_path else None
    if cfg is not None and (cfg.st_uid != 0 or cfg.st_mode & 0o022) and st.st_uid == 0:
        raise AgentError("{} names datadir {}, which belongs to root, and {} can change that file; dbtls writes "
                         "ProxySQL's files only into a datadir ProxySQL's account owns".format(
                             config_path, datadir, safepath.user_name(cfg.st_uid) if cfg.st_uid else
                             "a group or other users"))
    return st.st_uid, st.st_gid


def enable(ctx: Any) -> Dict[str, Any]:
    ctx = Context.of(ctx)
    ctx.start_journal(ROLE)
    cert_dir = ctx.cert_dir
    require = bool(ctx.get("require_tls", False)) and any(s in ctx.stages for s in ("require",))
    admin = Admin(ctx)
    _undrain(ctx, admin, cert_dir)
    role_state = state.RoleState(cert_dir, ROLE)
    role_state.remember("snapshot", admin.snapshot().to_dict())
    ctx.step("preflight")
    backend_ca = os.path.join(cert_dir, "server", "root.crt")
    changes = ChangeSet(cert_dir, ROLE)
    owner = _datadir_owner(admin.datadir, admin.config_path)
    files = _frontend_files(cert_dir)
    undo = []
    for name, content in sorted(files.items()):
        path = os.path.join(admin.datadir, name)
        undo.append((path, fsio.read_bytes(path)))
        mode = 0o600 if name == proxysql_plan.FRONTEND_KEY else 0o644
        changes.write(path, content, mode=mode, owner=owner)
    ctx.step("write-files")
    # With Require TLS, clients of users without use_ssl that connect without TLS are refused from now on.
    refused = report.gather_and_analyse(admin)["needs_action"] if require else []
    plan = proxysql_plan.enable_plan(admin.version, backend_ca, require_tls=require)
    try:
        admin.client.execute(plan.statements)
        ctx.step("apply")
        problems = admin.runtime_problems(backend_ca, require)
        if problems:
            raise AgentError("; ".join(problems))
    except AgentError as exc:
        _rollback(admin, changes, undo, role_state)
        raise AgentError("{}; the previous ProxySQL settings were restored".format(exc)) from None
    min_tls_note = proxysql_plan.min_tls_note(ctx.tls_versions())
    for message in plan.notes + ([min_tls_note] if min_tls_note else []):
        _say(ctx, "proxysql: " + message)
    ctx.step("done")
    return {"role": ROLE, "version": ".".join(map(str, admin.version)), "datadir": admin.datadir,
            "restart_required": plan.restart_required, "require_tls": require,
            "statements": len(plan.statements), "verified": "runtime", "needs_action": refused,
            "min_tls_note": min_tls_note, "messages": ctx.messages}


def _rollback(admin: Admin, changes: ChangeSet, undo: List[Any], role_state: state.RoleState) -> None:
    changes.undo(undo, default_mode=0o600)
    snapshot = proxysql_plan.Snapshot.from_dict(role_state.get("snapshot", {}))
    reload_version = admin.version if _all_frontend_files(admin.datadir) else None
    plan = proxysql_plan.disable_plan(snapshot, reload_version)
    admin.client.try_query(";\n".join(plan.statements))
    if not changes.entries:
        role_state.remove()


def _all_frontend_files(datadir: str) -> bool:
    return all(os.path.isfile(os.path.join(datadir, n)) for n in proxysql_plan.FRONTEND_FILES)


def _say(ctx: Any, message: str) -> None:
    say = getattr(ctx, "say", None)
    if callable(say):
        say(message)


def _undrain(ctx: Any, admin: Admin, cert_dir: str) -> None:
    """Backends an unfinished ``proxysql-backend --state offline-soft`` left OFFLINE_SOFT go back ONLINE
    first: the plans below SAVE mysql_servers to disk, which must never keep a transient drain."""
    for message in drain.restore_leftovers(admin, cert_dir):
        _say(ctx, "proxysql: " + message)


def disable(ctx: Any) -> Dict[str, Any]:
    ctx = Context.of(ctx)
    ctx.start_journal(ROLE)
    cert_dir = ctx.cert_dir
    admin = Admin(ctx)
    _undrain(ctx, admin, cert_dir)
    role_state = state.RoleState(cert_dir, ROLE)
    changes = ChangeSet(cert_dir, ROLE)
    files = {}
    for path in list(changes.paths()):
        files[path] = changes.restore(path)
        if files[path] != "foreign-edit":
            changes.forget(path)
    ctx.step("write-files")
    recorded = role_state.get("snapshot")
    # Uninstall asks for --remove-certs: the node's server/ files and .pending go once it is restored.
    def certs_removed() -> bool:
        return common.remove_certs(ctx) if ctx.get("remove_certs") else False

    if recorded is None:
        ctx.step("done")
        return {"role": ROLE, "changed": bool(files), "files": files, "note": "nothing recorded at enable",
                "certs_removed": certs_removed()}
    reload_version = admin.version if _all_frontend_files(admin.datadir) else None
    plan = proxysql_plan.disable_plan(proxysql_plan.Snapshot.from_dict(recorded), reload_version)
    admin.client.execute(plan.statements)
    ctx.step("apply")
    restored = admin.snapshot()
    expected = proxysql_plan.Snapshot.from_dict(recorded)
    if restored.variables != expected.variables:
        raise AgentError("ProxySQL variables after disable differ from those recorded at enable: {}".format(
            restored.variables))
    role_state.remove()
    for message in plan.notes:
        _say(ctx, "proxysql: " + message)
    ctx.step("done")
    return {"role": ROLE, "changed": True, "files": files, "restart_required": plan.restart_required,
            "certs_removed": certs_removed()}


def status(ctx: Any) -> Dict[str, Any]:
    admin = Admin(ctx)
    queries = proxysql_plan.verify_queries()
    variables = proxysql_plan.parse_variables(admin.client.query(queries["variables"]))
    servers = [{"hostgroup": h, "hostname": n, "port": p, "use_ssl": u}
               for h, n, p, u in proxysql_plan.parse_servers(admin.client.query(queries["servers"]))]
    users = [{"username": n, "use_ssl": u} for n, _b, u in proxysql_plan.parse_users(admin.client.query(queries["users"]))]
    files = _all_frontend_files(admin.datadir)
    ctx = Context.of(ctx)
    return statusschema.document(
        ROLE, ".".join(map(str, admin.version)), True, status_stages(variables, servers, users, files),
        _runtime_tls(variables, servers, admin.datadir, ctx.server_cert()), common.certificates(ctx),
        runtime_variables=variables, servers=servers, users=users, frontend_files=files)


def _on(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def status_stages(variables: Dict[str, Any], servers: List[Dict[str, Any]], users: List[Dict[str, Any]],
                  frontend_files: bool) -> List[str]:
    """Our stages in place: offer = ``mysql-have_ssl`` with the frontend files; use = every backend
    row over TLS; require = every user with ``use_ssl``."""
    if not (_on(variables.get("mysql-have_ssl")) and frontend_files):
        return []
    stages = ["offer"]
    if servers and all(_on(s.get("use_ssl")) for s in servers):
        stages.append("use")
    if users and all(_on(u.get("use_ssl")) for u in users):
        stages.append("require")
    return stages


def _runtime_tls(variables: Dict[str, Any], servers: List[Dict[str, Any]], datadir: str,
                 server_cert: str) -> Dict[str, Any]:
    """What ProxySQL's runtime says it serves: ``mysql-have_ssl`` and the certificate in its datadir
    compared with ours (the agent speaks no handshake to ProxySQL's frontend)."""
    def sha(path: str) -> Optional[str]:
        try:
            pem = fsio.read_bytes(path)
            return der.pem_sha256(pem) if pem else None
        except AgentError:
            return None

    served = sha(os.path.join(datadir, proxysql_plan.FRONTEND_CERT))
    expected = sha(server_cert)
    error = None
    if not _on(variables.get("mysql-have_ssl")):
        error = "mysql-have_ssl is off"
    elif served is None:
        error = "no {} in {}".format(proxysql_plan.FRONTEND_CERT, datadir)
    elif served != expected:
        error = "{} is not server/server.crt".format(proxysql_plan.FRONTEND_CERT)
    used = sum(1 for s in servers if _on(s.get("use_ssl")))
    return statusschema.tls(error is None, "runtime", sha256=served, expected_sha256=expected, error=error,
                            note="backends over TLS {}/{}".format(used, len(servers)))
