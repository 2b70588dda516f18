"""Role ``mysql``: TLS for MariaDB, MySQL and Percona Server on one node.

Stages: *offer* writes ``ssl-config.cnf`` into the drop-in directory the server
really reads and makes the server serve our certificate (MariaDB / MySQL < 8.0.16: one restart;
MySQL/Percona 8.0.16+: SET PERSIST + ALTER INSTANCE RELOAD TLS; later swaps: FLUSH SSL / RELOAD TLS);
*use* points a replica's channel at its primary over TLS; *require* turns on
``require_secure_transport`` (live and in the file) with ``--require-tls``. Every stage ends with a
real handshake (:mod:`.probe`) compared with our certificate's SHA-256; on failure the files are
put back, the server restarted/reloaded, and the server's own error is raised.
"""

import os
import shutil
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio, nodeos, state
from dbtls_agent.crypto import der, get_backend
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import common, replwait, statusschema
from dbtls_agent.roles.base import Context
from dbtls_agent.roles.mysql import cipherorder, lockout, mycnf
from dbtls_agent.roles.mysql import flavor as mysqlflavor
from dbtls_agent.roles.mysql import node as mysqlnode
from dbtls_agent.roles.mysql import probe as mysqlprobe
from dbtls_agent.roles.mysql import users as mysqlusers
from dbtls_agent.roles.mysql.replica import disable_replica, enable_replica, replica_status
from dbtls_agent.state import ChangeSet
from dbtls_agent.vocab import MIN_TLS_VERSIONS

ROLE = "mysql"
LIVE_QUERY = "SELECT @@have_ssl, @@ssl_cert, @@ssl_key, @@ssl_ca, @@port, @@log_error, @@require_secure_transport"


def detect() -> Optional[Dict[str, Any]]:
    """Facts when a MySQL-family server is installed here (from ``mysqld --version``)."""
    for name in ("mariadbd", "mysqld"):
        path = shutil.which(name) or ("/usr/sbin/" + name if os.path.exists("/usr/sbin/" + name) else None)
        if path:
            code, out, err = nodeos.run_status([path, "--version"], timeout=20)
            if code == 0:
                info = mysqlflavor.parse_version_line(out + err)
                return {"role": ROLE, "flavor": info.flavor, "version": ".".join(map(str, info.version)),
                        "binary": path}
    return None


def _say(ctx: Any, message: str) -> None:
    say = getattr(ctx, "say", None)
    if callable(say):
        say(message)


class Node(object):
    """The local server as seen through root's local (socket) login."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx = Context.of(ctx)
        self.cert_dir = ctx.cert_dir
        password = ctx.first_password("mysql_root", "mysql-root", "root", "MYSQL_ROOT_PASSWORD")
        self.client = self._login(password)
        self.info = mysqlflavor.parse_version_query(self.client.query("SELECT VERSION(), @@version_comment"))
        self.server_dir = os.path.join(self.cert_dir, "server")
        self.root_crt = os.path.join(self.server_dir, "root.crt")
        self.state = state.RoleState(self.cert_dir, ROLE)

    def _login(self, password: Optional[str]) -> mysqlnode.Client:
        client = mysqlnode.Client(user="root", what="the local database server (root via socket)")
        code, out, err = client.try_query("SELECT 1")
        if code == 0:
            return client
        first = mysqlnode.one_line(err or out)
        if password:
            client = mysqlnode.Client(user="root", password=password, what="the local database server (root)")
            code, out, err = client.try_query("SELECT 1")
            if code == 0:
                return client
            first = mysqlnode.one_line(err or out)
        raise AgentError("cannot log in to the local database server as root: {}".format(first))

    @property
    def flavor(self) -> str:
        return self.info.flavor

    @property
    def version(self):
        return self.info.version

    def live(self) -> Dict[str, Optional[str]]:
        sql = LIVE_QUERY
        if not mysqlflavor.has_require_secure_transport(self.flavor, self.version):
            sql = sql.replace(", @@require_secure_transport", ", 'OFF'")
        row = self.client.rows(sql)[0]
        keys = ("have_ssl", "ssl_cert", "ssl_key", "ssl_ca", "port", "log_error", "require_secure_transport")
        return {key: row[i] if i < len(row) else None for i, key in enumerate(keys)}

    def probe(self) -> mysqlprobe.ProbeResult:
        port = int(self.live()["port"] or 3306)
        return mysqlprobe.probe(self.ctx.node_hostname(), port, self.root_crt)

    def restart(self, log_error: Optional[str]) -> Optional[str]:
        """Restart through the platform; None when the server is back, else its error."""
        since = nodeos.file_size(log_error)
        replwait.remember_mysql_now(self, self.cert_dir)  # 'replication wait' names them afterwards
        cipherorder.reload_units(nodeos.run_status)  # our service drop-in, written or removed
        try:
            nodeos.service("restart", timeout=240.0, units=("mariadb", "mysql"))
            ok, output = True, ""
        except AgentError as exc:
            ok, output = False, str(exc)
        try:
            self.client.wait_ready(90.0)
        except AgentError as exc:
            ok, output = False, output + "\n" + str(exc)
        if ok:
            return None
        reason = mysqlnode.server_error(mysqlnode.error_log_tail(log_error, since))
        return reason or mysqlnode.one_line(output) or "the server did not start"


def _our_files(node: Node) -> Dict[str, bytes]:
    files = {}
    for name in ("server.crt", "server.key", "root.crt"):
        data = fsio.read_bytes(os.path.join(node.server_dir, name))
        if data is None:
            raise AgentError("{} is missing: install the certificates first (install-certs)".format(
                os.path.join(node.server_dir, name)))
        files[name] = data
    backend = get_backend()
    if not backend.key_matches_cert(files["server.key"], files["server.crt"]):
        raise AgentError("server.key does not belong to server.crt in {}".format(node.server_dir))
    backend.verify_chain(files["server.crt"], files["root.crt"])
    return files


def restart_relevant(text: Optional[str]) -> str:
    """The file minus the require_secure_transport line (that one is switched live)."""
    return "".join(ln for ln in mycnf.split_lines(text or "") if "require_secure_transport" not in ln)


def _our_paths(node: Node) -> Dict[str, str]:
    return {"ssl_cert": os.path.join(node.server_dir, "server.crt"),
            "ssl_key": os.path.join(node.server_dir, "server.key"), "ssl_ca": node.root_crt}


def _wanted_config(ctx: Context, node: Node, require: bool) -> str:
    """The text of ``ssl-config.cnf`` this run writes."""
    key = get_backend().public_key_info(fsio.read_bytes(os.path.join(node.server_dir, "server.key")) or b"")
    return mycnf.render_ssl_config(node.cert_dir, key_type=key["key_type"], tls_versions=ctx.tls_versions(),
                                   require_tls=require, flavor=node.flavor, version=node.version)


class OfferPlan(object):
    """What the offer stage does to the running server, decided before it changes anything.

    ``action``: ``restart``, ``persist+reload`` (SET PERSIST + ALTER INSTANCE RELOAD TLS), the
    statement that loads a new certificate live (``FLUSH SSL``, ``ALTER INSTANCE RELOAD TLS``), or
    ``none``; ``swap``: the action only loads a new certificate; ``reason``: why, in one line.
    ``restart-expected`` reports this plan, so the manifest drains a node exactly when it restarts.
    """

    def __init__(self, action: str, reason: str, swap: bool = False) -> None:
        self.action = action
        self.reason = reason
        self.swap = swap

    @property
    def needs_restart(self) -> bool:
        return self.action == "restart"


def plan_offer(ctx: Any, node: Node, live: Optional[Dict[str, Optional[str]]] = None) -> OfferPlan:
    """The offer stage's plan: a server that does not serve our files yet, or whose TLS lines of
    ``ssl-config.cnf`` (or mysqld's OpenSSL settings) change, gets them by restart (MariaDB, MySQL
    < 8.0.16) or SET PERSIST + reload; one that serves another certificate with our settings swaps
    it live where the server can (else restarts)."""
    ctx = Context.of(ctx)
    live = live or node.live()
    what = "{} {}".format(node.flavor, ".".join(map(str, node.version)))
    restart_only = mysqlflavor.first_enable_needs_restart(node.flavor, node.version)
    live_ok = (live["have_ssl"] or "").upper() == "YES" and all(live[k] == v for k, v in _our_paths(node).items())
    directory, _main = mysqlnode.dropin_plan(fsio.read_text)
    path = os.path.join(directory, mycnf.SSL_CONFIG_NAME)
    change = None  # type: Optional[str]
    if not live_ok:
        change = "{} does not serve our certificate files yet (have_ssl={})".format(what, live["have_ssl"])
    elif restart_relevant(fsio.read_text(path)) != restart_relevant(_wanted_config(ctx, node, False)):
        change = "the TLS settings in {} change".format(path)
    elif cipherorder.pending(directory, node.flavor == mysqlflavor.MARIADB, nodeos.run_status):
        change = "mysqld's OpenSSL settings (server cipher order) change"
    if change is not None:
        if restart_only:
            return OfferPlan("restart", change)
        return OfferPlan("persist+reload", "{} switches TLS on without a restart ({})".format(what, change))
    try:
        served = node.probe().sha256  # type: Optional[str]
    except AgentError:
        served = None
    if served == der.pem_sha256(fsio.read_bytes(os.path.join(node.server_dir, "server.crt")) or b""):
        return OfferPlan("none", "{} already serves TLS with these settings".format(what))
    statement = mysqlflavor.cert_swap_statement(node.flavor, node.version)
    if statement is None:
        return OfferPlan("restart", "{} loads a new certificate only at start".format(what), swap=True)
    return OfferPlan(statement, "{} loads the new certificate with {}".format(what, statement), swap=True)


#: What a restored file's outcome is called when it really changed the file back.
RESTORED = ("restored", "removed", "include-removed")


def disable_restarts(flavor: str, version: Any, outcomes: List[str], resumed: bool) -> bool:
    """The disable stage restarts a restart-only server (MariaDB, MySQL < 8.0.16) when it put a file
    back, or when it resumes a killed run (the files are back, the server may still serve TLS)."""
    return mysqlflavor.first_enable_needs_restart(flavor, version) and (
        any(o in RESTORED for o in outcomes) or resumed)


def _write_config(node: Node, changes: ChangeSet, require: bool, undo: List[Any]) -> Dict[str, Any]:
    """Create/include the drop-in dir and write ssl-config.cnf; ``undo`` collects pre-run bytes."""
    directory, main_needing_include = mysqlnode.dropin_plan(fsio.read_text)
    created = []
    if not os.path.isdir(directory):
        fsio.ensure_dir(directory, 0o755)
        created.append(directory)
        node.state.set("created_dirs", sorted(set(node.state.get("created_dirs", []) + created)))
    if main_needing_include:
        text = fsio.read_text(main_needing_include) or ""
        undo.append((main_needing_include, fsio.read_bytes(main_needing_include)))
        changes.write(main_needing_include, mycnf.ensure_includedir(text, directory).encode())
    path = os.path.join(directory, mycnf.SSL_CONFIG_NAME)
    text = _wanted_config(node.ctx, node, require)
    undo.append((path, fsio.read_bytes(path)))
    changes.write(path, text.encode(), mode=0o644, owner=(0, 0) if os.geteuid() == 0 else None)
    order = cipherorder.write_files(changes, undo, directory, node.flavor == mysqlflavor.MARIADB, nodeos.run_status)
    if order["created_dirs"]:
        node.state.set("created_dirs", sorted(set(node.state.get("created_dirs", []) + order["created_dirs"])))
    return {"path": path, "created_dirs": created, "include_added_to": main_needing_include, "cipher_order": order}


def _cipher_order(node: Node, order: Dict[str, Any]) -> Dict[str, Any]:
    """Does the server's ssl-cipher order win (:mod:`.cipherorder`)? Reported, never fatal: every
    suite we offer is AEAD with forward secrecy, so the client's pick is still a strong one."""
    order = {k: v for k, v in order.items() if k != "created_dirs"}
    if "skip" not in order:
        order["enforced"] = cipherorder.server_order_enforced(
            node.ctx.node_hostname(), int(node.live()["port"] or 3306), node.root_crt,
            node.client.value("SELECT @@ssl_cipher") or "")
    return order




def _save_served(node: Node, files: Dict[str, bytes]) -> None:
    target = state.layout(node.cert_dir).mysql_served
    fsio.ensure_dir(target, 0o700)
    for name, data in files.items():
        fsio.atomic_write(os.path.join(target, name), data, 0o600)


def _restore_served(node: Node) -> bool:
    """Put the last verified cert/key/root back (a failed swap must not break the next restart)."""
    source = state.layout(node.cert_dir).mysql_served
    restored = False
    for name in ("server.crt", "server.key", "root.crt"):
        data = fsio.read_bytes(os.path.join(source, name))
        dest = os.path.join(node.server_dir, name)
        st = fsio.read_with_stat(dest)[1]  # server/ belongs to mysql: never stat through a link there
        if data is not None and st is not None:
            fsio.atomic_write(dest, data, st.st_mode & 0o777, (st.st_uid, st.st_gid))
            restored = True
    return restored


def _verify(node: Node, files: Dict[str, bytes]) -> Dict[str, str]:
    want = der.pem_sha256(files["server.crt"])
    live = node.live()
    if (live["have_ssl"] or "").upper() not in ("YES", ""):
        raise AgentError("the server reports have_ssl={}".format(live["have_ssl"]))
    result = node.probe()
    if result.sha256 != want:
        raise AgentError("the server serves certificate sha256 {} instead of ours ({})".format(
            result.sha256[:16], want[:16]))
    if result.tls_version not in MIN_TLS_VERSIONS:
        raise AgentError("the server negotiated {}, expected TLSv1.2 or later".format(result.tls_version))
    return mysqlprobe.describe(result)


def _offer(ctx: Any, node: Node, require: bool, report: Dict[str, Any]) -> None:
    ctx = Context.of(ctx)
    files = _our_files(node)
    live = node.live()
    node.state.remember("before", {"have_ssl": live["have_ssl"], "require_secure_transport": live["require_secure_transport"]})
    plan = plan_offer(ctx, node, live)
    changes = ChangeSet(node.cert_dir, ROLE)
    undo = []  # type: List[Any]
    written = _write_config(node, changes, require, undo)
    report["config"] = written["path"]
    ctx.step("write-files")
    ours = _our_paths(node)
    action = plan.action
    try:
        if not mysqlflavor.first_enable_needs_restart(node.flavor, node.version):
            node.state.remember("tls_snapshot", {r[0]: (r[1], r[2]) for r in node.client.rows(
                mysqlflavor.tls_snapshot_query())})
        if action == "restart":
            error = node.restart(live["log_error"])
            if error and plan.swap:
                raise AgentError("the server did not restart: {}".format(error))
            if error:
                raise AgentError("the server did not start with the TLS configuration: {}".format(error))
        elif action == "persist+reload":
            versions = ctx.tls_versions() or None
            node.client.execute(mysqlflavor.persist_statements(
                node.flavor, node.version, ours["ssl_ca"], ours["ssl_cert"], ours["ssl_key"],
                tls_versions=versions))
        elif action != "none":
            node.client.execute([action])
        ctx.step("apply")
        report["verified"] = _verify(node, files)
    except AgentError as exc:
        changes.undo(undo)
        swapped_back = action in ("FLUSH SSL", "ALTER INSTANCE RELOAD TLS") and _restore_served(node)
        if action == "restart":
            again = node.restart(live["log_error"])
            if again:
                raise AgentError("{}; restoring the previous configuration did not bring the server back either: "
                                 "{}".format(exc, again)) from None
        elif swapped_back:
            statement = mysqlflavor.cert_swap_statement(node.flavor, node.version)
            node.client.try_query(statement or "SELECT 1")
        raise AgentError("{}; the previous configuration was restored".format(exc)) from None
    _save_served(node, files)
    lockout.record_offered(node)
    report["cipher_order"] = _cipher_order(node, written["cipher_order"])
    ctx.step("verify")
    report["apply"] = action
    report["restarted"] = action == "restart"
    _say(ctx, "mysql: TLS offered ({}) on {} {}".format(action, node.flavor, ".".join(map(str, node.version))))


def _require(ctx: Any, node: Node, report: Dict[str, Any]) -> None:
    ctx = Context.of(ctx)
    want = bool(ctx.get("require_tls", False))
    live = node.live()
    current = (live["require_secure_transport"] or "OFF").upper() in ("ON", "1")
    if want and not mysqlflavor.has_require_secure_transport(node.flavor, node.version):
        raise AgentError("{} {} has no require_secure_transport; require TLS per account instead".format(
            node.flavor, ".".join(map(str, node.version))))
    changes = ChangeSet(node.cert_dir, ROLE)
    before = (node.state.get("before", {}).get("require_secure_transport") or "OFF").upper()
    if want and before in ("OFF", "0") and not node.state.get("require_set_by_dbtls"):
        # Ours even when the offer stage's restart already read it from our file (MariaDB).
        node.state.set("require_set_by_dbtls", True)
    if want or node.state.get("require_set_by_dbtls"):
        _write_config(node, changes, want, [])
    if want and not current:
        node.state.set("require_set_by_dbtls", True)
        node.client.execute([mysqlflavor.require_secure_transport_statement(node.flavor, node.version, True)])
    elif not want and current and node.state.get("require_set_by_dbtls"):
        node.client.execute([mysqlflavor.require_secure_transport_statement(node.flavor, node.version, False)])
        node.state.pop("require_set_by_dbtls")
    node.client.wait_ready(10.0)  # the platform's local admin login (socket) must keep working
    after = (node.live()["require_secure_transport"] or "OFF").upper()
    report["require_secure_transport"] = "ON" if after in ("ON", "1") else "OFF"


def enable(ctx: Any) -> Dict[str, Any]:
    ctx = Context.of(ctx)
    journal = ctx.start_journal(ROLE)
    node = Node(ctx)
    stages = ctx.stages
    report = {"role": ROLE, "flavor": node.flavor, "version": ".".join(map(str, node.version)),
              "stages": stages, "resumed": bool(journal and journal.resumed)}  # type: Dict[str, Any]
    lock = lockout.check(ctx, node, stages)  # stops here when Require TLS would lock a client out
    report["needs_action"] = lock["needs_action"]
    if lock["blockers"]:
        report["enforced_anyway"] = lock["blockers"]
    ctx.step("preflight")
    if "offer" in stages:
        # Only the require stage changes the require setting: an offer-only run (the re-issue's live
        # swap, run without --require-tls) keeps the line the require stage wrote.
        keep_require = bool(ctx.get("require_tls", False)) if "require" in stages else bool(
            node.state.get("require_set_by_dbtls"))
        _offer(ctx, node, keep_require, report)
    if "use" in stages:
        report["replication"] = enable_replica(ctx, node, strict=stages == ["use"])
        ctx.step("replica")
    if "require" in stages:
        _require(ctx, node, report)
        ctx.step("require")
    ctx.step("done")
    return report


def disable(ctx: Any) -> Dict[str, Any]:
    ctx = Context.of(ctx)
    journal = ctx.start_journal(ROLE)
    cert_dir = ctx.cert_dir
    node = Node(ctx)
    report = {"role": ROLE, "flavor": node.flavor, "version": ".".join(map(str, node.version))}  # type: Dict[str, Any]
    report["replication"] = disable_replica(ctx, node)
    ctx.step("replica")
    before = node.state.get("before", {})
    if node.state.get("require_set_by_dbtls") and (before.get("require_secure_transport") or "OFF").upper() in ("OFF", "0"):
        node.client.execute([mysqlflavor.require_secure_transport_statement(node.flavor, node.version, False)])
    report["users"] = undo_user_requirements(node)
    snapshot = node.state.get("tls_snapshot")
    if snapshot:
        node.client.execute(mysqlflavor.restore_tls_statements({k: tuple(v) for k, v in snapshot.items()}))
    ctx.step("live-settings")
    changes = ChangeSet(cert_dir, ROLE)
    restored = {}
    for path in list(changes.paths()):
        outcome = changes.restore(path)
        if outcome == "foreign-edit" and path.endswith(".cnf") and not path.endswith(mycnf.SSL_CONFIG_NAME):
            text = fsio.read_text(path) or ""
            for directory in node.state.get("created_dirs", []) + [mycnf.PLATFORM_CONF_D]:
                text = mycnf.remove_includedir(text, directory)
            fsio.atomic_write(path, text.encode(), os.stat(path).st_mode & 0o7777)
            outcome = "include-removed"
        restored[path] = outcome
        if outcome != "foreign-edit":
            changes.forget(path)
    for directory in node.state.get("created_dirs", []):
        try:
            os.rmdir(directory)
        except OSError:
            pass
    report["files"] = restored
    ctx.step("write-files")
    live = node.live()
    # A run killed after restoring the files left the server running with TLS: the re-run finds
    # nothing left to restore, so the journal decides the restart (as for PostgreSQL).
    if disable_restarts(node.flavor, node.version, list(restored.values()), bool(journal and journal.resumed)):
        error = node.restart(live["log_error"])
        if error:
            raise AgentError("the server did not start after restoring its configuration: {}".format(error))
        report["restarted"] = True
    ctx.step("apply")
    if report.get("restarted"):
        report["replication_wait"] = _wait_own_channels(ctx, node, cert_dir)
    node.state.remove()
    shutil.rmtree(state.layout(cert_dir).mysql_served, ignore_errors=True)
    # Uninstall asks for --remove-certs: server/, client/ (users' certificates too) and .pending go.
    report["certs_removed"] = common.remove_certs(ctx) if ctx.get("remove_certs") else False
    _say(ctx, "mysql: TLS configuration removed")
    ctx.step("done")
    return report


def _wait_own_channels(ctx: Any, node: Node, cert_dir: str, timeout: float = 60.0) -> Optional[Dict[str, Any]]:
    """After a replica's own restart: its channels running again (never fatal; the message says so).
    A primary's restart is waited for on its replicas ('replication wait' there)."""
    if not replwait.mysql_channels(node):
        return None
    waited = replwait.wait_mysql(node, cert_dir, timeout)
    if not waited["ok"]:
        _say(ctx, "replication: " + replwait.failure_line(waited, timeout))
    return waited


def undo_user_requirements(node: Node) -> List[str]:
    """Put back the account requirements ``user-cert`` changed on this node."""
    users = state.RoleState(node.cert_dir, "mysql-users")
    done = []
    for name, rows in sorted(users.data.items()):
        previous = [mysqlusers.AccountTls.from_dict(r) for r in rows]
        if previous:
            node.client.execute(mysqlusers.restore_statements(previous))
        done.append(name)
    users.remove()
    return done


def status(ctx: Any) -> Dict[str, Any]:
    node = Node(ctx)
    live = node.live()
    details = {"flavor": node.flavor, "have_ssl": live["have_ssl"],
               "require_secure_transport": live["require_secure_transport"],
               "ssl_cert": live["ssl_cert"]}  # type: Dict[str, Any]
    directory, _ = mysqlnode.dropin_plan(fsio.read_text)
    path = os.path.join(directory, mycnf.SSL_CONFIG_NAME)
    details["config"] = {"path": path, "kind": mycnf.classify_dropin(fsio.read_text(path))}
    cert = fsio.read_bytes(os.path.join(node.server_dir, "server.crt"))
    try:
        expected = der.pem_sha256(cert) if cert else None  # type: Optional[str]
    except AgentError:
        expected = None
    try:
        served = node.probe()
        details["served"] = mysqlprobe.describe(served)
        ours = expected is not None and served.sha256 == expected
        tls = statusschema.tls(ours, "handshake", served.tls_version, served.sha256, expected,
                               None if ours else "the server serves another certificate than server/server.crt",
                               cipher=served.cipher)
    except AgentError as exc:
        details["served"] = {"error": str(exc)}
        ours = False
        tls = statusschema.tls(False, "handshake", expected_sha256=expected, error=str(exc))
    details["serves_our_certificate"] = ours
    details["replication"] = replica_status(node)
    return statusschema.document(ROLE, ".".join(map(str, node.version)), True,
                                 status_stages(details["config"]["kind"], live["require_secure_transport"],
                                               details["replication"]),
                                 tls, common.certificates(Context.of(ctx)), **details)


def status_stages(config_kind: str, require_secure_transport: Any, channels: List[Dict[str, str]]) -> List[str]:
    """Our stages in place: offer = our ``ssl-config.cnf``; use = a replica whose channels all
    allow TLS; require = ``require_secure_transport`` on."""
    if config_kind != "dbtls":
        return []
    stages = ["offer"]
    if channels and all(str(c.get("ssl_allowed")).lower() == "yes" for c in channels):
        stages.append("use")
    if str(require_secure_transport).upper() in ("ON", "1"):
        stages.append("require")
    return stages
