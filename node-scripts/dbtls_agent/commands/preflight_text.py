"""The short human form of a pre-flight report: a few lines for the dashboard's success message.

Pure functions of the JSON report; lists are cut to a few names so a large cluster still fits.
"""

from typing import Any, Dict, List, Optional

from dbtls_agent.roles import lockout

NAMES_SHOWN = 5


def names(items: List[str], limit: int = NAMES_SHOWN) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown + (" and {} more".format(len(items) - limit) if len(items) > limit else "")


def _tail(report: Dict[str, Any]) -> List[str]:
    """needs_action grouped by kind, one short line each; then the blockers."""
    lines = []
    needs = report.get("needs_action") or []
    by_kind = {}  # type: Dict[str, List[str]]
    for entry in needs:
        by_kind.setdefault(entry.get("kind") or "", []).append(entry["who"])
    for kind, who in sorted(by_kind.items()):
        if kind == lockout.MD5_PASSWORD:
            lines.append("to do: set the password of {} again (\\password NAME in psql; for Pgpool-II too: "
                         "{}): until then md5 over TLS".format(names(who), lockout.PGPOOL_STEPS))
        elif kind == lockout.POOL_MD5:
            lines.append("to do: md5 pool_passwd entries of {} keep working; move them to SCRAM with {}".format(
                names(who), lockout.PGPOOL_STEPS))
        elif kind == lockout.RECONNECT_TLS:
            lines.append("to do{}: {} client(s) now without TLS must reconnect with TLS: {}".format(
                " before Require TLS" if report.get("role") == "mysql" else "", len(who), names(who, 3)))
        elif kind == lockout.TLS_UNKNOWN:
            lines.append("note: TLS state of {} unknown (performance_schema is off)".format(", ".join(who)))
        elif kind != lockout.PLAINTEXT_USERS:
            lines.append("to do: " + "; ".join(e["step"] for e in needs if (e.get("kind") or "") == kind))
    blockers = report.get("blockers") or []
    if blockers:
        lines.append("STOP: " + "; ".join("{}: {}".format(b["who"], b["why"]) for b in blockers[:3]))
    return lines


def _sessions(sessions: List[Dict[str, Any]]) -> str:
    return "{} ({})".format(len(sessions), names([lockout.session_label(s) for s in sessions], 3))


def postgres(report: Dict[str, Any]) -> List[str]:
    side = "primary" if report.get("primary") else "standby"
    lines = ["PostgreSQL {} ({}): {} login roles, {} can log in remotely; TLS offered: {}".format(
        report.get("version"), side, len(report.get("login_roles") or []), len(report.get("remote_roles") or []),
        "yes" if report.get("ssl") == "on" else "no")]
    if report.get("md5_roles"):
        lines.append("md5 passwords: {} (they keep logging in with md5 over TLS until reset)".format(
            names(report["md5_roles"])))
    plain = report.get("sessions_without_tls") or []
    if plain:
        lines.append("sessions without TLS now: " + _sessions(plain))
    repl = report.get("replication") or {}
    if repl.get("side") == "primary":
        standbys = repl.get("standbys") or []
        lines.append("replication: {} standby(s): {}".format(len(standbys), names(
            ["{} {}{}".format(s.get("application_name") or "?", s.get("state"), " (TLS)" if s.get("tls") else "")
             for s in standbys])))
    elif repl:
        lines.append("replication: WAL receiver {} from {}".format(repl.get("status"), repl.get("primary") or "?"))
    return lines + _tail(report)


def pgpool(report: Dict[str, Any]) -> List[str]:
    kinds = report.get("by_kind") or {}
    lines = ["Pgpool-II pool_passwd: md5: {}; AES: {}; text: {}{}".format(
        names(kinds.get("md5") or []), names(kinds.get("aes") or []), names(kinds.get("text") or []),
        "; other: " + names(kinds["other"]) if kinds.get("other") else "")]
    if report.get("md5_rules_after_enable"):
        lines.append("md5 entries kept working by a per-role md5 rule: " + names(report["md5_rules_after_enable"]))
    without = report.get("without_entry")
    if without is None:
        lines.append("roles without an entry: unknown ({})".format(report.get("backend_roles_error") or "no backend"))
    elif without:
        lines.append("no pool_passwd entry (cannot log in through Pgpool-II, now or after): " + names(without))
    return lines + _tail(report)


def mysql(report: Dict[str, Any]) -> List[str]:
    refuse = report.get("require_tls_would_refuse") or {}
    lines = ["{} {}: {} remote account(s); TLS offered: {}; performance_schema: {}".format(
        report.get("flavor"), report.get("version"), len(report.get("remote_accounts") or []),
        "yes" if report.get("have_ssl") == "YES" else "no", "on" if report.get("performance_schema") else "off")]
    plain = report.get("sessions_without_tls") or []
    unknown = report.get("sessions_tls_unknown") or []
    if plain or unknown:
        lines.append("TCP sessions without TLS now: {}; TLS unknown: {}".format(_sessions(plain), len(unknown)))
    lines.append("Require TLS would refuse plaintext logins of: {}".format(
        names(refuse.get("accounts_without_tls_requirement") or [])))
    channels = (report.get("replication") or {}).get("channels") or []
    for channel in channels[:2]:
        lines.append("replication from {}: IO {}, SQL {}{}".format(
            channel.get("source"), channel.get("io_running"), channel.get("sql_running"),
            " ({})".format(channel["last_io_error"]) if channel.get("last_io_error") else ""))
    replicas = (report.get("replication") or {}).get("replicas") or []
    if replicas:
        lines.append("replicas connected: " + names(replicas))
    return lines + _tail(report)


def proxysql(report: Dict[str, Any]) -> List[str]:
    users = report.get("users") or []
    refused = (report.get("require_tls_would_refuse") or {}).get("users_without_use_ssl") or []
    lines = ["ProxySQL {}: {} user(s); TLS offered to clients: {}".format(
        report.get("version"), len({u["username"] for u in users}), "yes" if report.get("have_ssl") else "no"),
        "Require TLS (use_ssl=1) would refuse plaintext clients of: " + names(refused)]
    return lines + _tail(report)


RENDER = {"postgres": postgres, "pgpool": pgpool, "mysql": mysql, "proxysql": proxysql}


def render(report: Dict[str, Any], role: Optional[str] = None) -> str:
    return "\n".join(RENDER[role or report["role"]](report)) + "\n"
