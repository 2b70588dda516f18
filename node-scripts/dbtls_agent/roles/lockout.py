"""What still needs the user's hand after enable, and what would lock someone out: shared wording.

Two lists come out of every pre-flight and every enable run:

* ``needs_action``: logins that keep working, but only thanks to a compatibility rule (an md5
  secret under a per-role ``md5`` rule, an md5 entry in Pgpool-II's pool_passwd), or clients that
  must reconnect with TLS. Each entry names who, why, and the exact step.
* ``blockers``: logins that cannot be kept working. The real case is a client that connected
  without TLS *after* the server already offered TLS: it does not use TLS (``sslmode=disable``, a
  driver without TLS), and the require stage would refuse its next login. Enable stops before
  changing anything while there is one, unless ``--enforce-anyway`` is given.

Sessions are dicts with ``user``, ``address``, ``application`` (may be empty), ``tls`` (True,
False or None when unknown), ``started`` (server epoch seconds or None) and ``after`` (what its next
plaintext login meets after enable: ``refused``, ``plaintext-rule``, ``unknown``).
"""

import time
from typing import Any, Callable, Dict, List, Optional

from dbtls_agent.errors import AgentError

Entry = Dict[str, Any]


#: Kinds of needs_action entries (the short text form groups by them).
MD5_PASSWORD, POOL_MD5, RECONNECT_TLS, TLS_UNKNOWN, PLAINTEXT_USERS = (
    "md5-password", "pool-md5", "reconnect-tls", "tls-unknown", "plaintext-users")


#: How a user reaches Pgpool-II with SCRAM today: two agent commands over SSH, the password in a
#: root-only file (never on a command line). A dashboard button for it needs a way to hand a form's
#: password to the nodes that the platform neither logs nor shows in process lists; see docs/lockout.md.
PGPOOL_STEPS = ("'dbtls-agent role set-password --user NAME --password-file F' on the primary, then "
                "'dbtls-agent pool-passwd allow --user NAME --password-file F' on every Pgpool-II node "
                "(F: a root-only file holding the password, deleted once read)")


def action(who: str, layer: str, why: str, step: str, kind: str = "") -> Entry:
    return {"who": who, "layer": layer, "why": why, "step": step, "kind": kind}


def pg_md5_role(role: str, ident: str, pgpool: bool = False) -> Entry:
    """An md5 role kept working by its own ``hostssl ... md5`` rule."""
    step = ("ALTER ROLE {} PASSWORD '...' as that user, or \\password {} in psql; the next enable run "
            "then drops its md5 rule").format(ident, role)
    if pgpool:
        step += "; for Pgpool-II too: " + PGPOOL_STEPS.replace("NAME", role)
    return action(role, "postgres", "the stored password is md5: it keeps logging in with md5 over TLS "
                  "through a rule of its own, not with scram-sha-256", step, MD5_PASSWORD)


def pool_md5_entry(user: str) -> Entry:
    """A pool_passwd md5 entry kept working by its own pool_hba.conf ``md5`` rule."""
    return action(user, "pgpool", "pool_passwd holds an md5 entry: it keeps logging in through Pgpool-II with "
                  "md5 over TLS through a rule of its own; it stops working once its password is reset to SCRAM "
                  "on the database", PGPOOL_STEPS.replace("NAME", user), POOL_MD5)


def when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def session_label(session: Dict[str, Any]) -> str:
    label = "{} from {}".format(session.get("user") or "?", session.get("address") or "?")
    if session.get("application"):
        label += " ({})".format(session["application"])
    return label


CLIENT_TLS_HINT = {"postgres": "libpq's default sslmode=prefer already does; or set sslmode=require",
                   "mysql": "MariaDB/MySQL clients use TLS when the server offers it unless told not to "
                            "(--skip-ssl, ssl-mode=DISABLED)"}


def reconnect(session: Dict[str, Any], layer: str) -> Entry:
    """A session without TLS that started before TLS was offered: its next login must use TLS."""
    after = "with Require TLS" if layer == "mysql" else "after enable"
    return action(session_label(session), layer, "connected without TLS before TLS was offered; {} its next login "
                  "without TLS is refused".format(after), "make the client use TLS ({})".format(
                      CLIENT_TLS_HINT.get(layer, "")), RECONNECT_TLS)


def blocker(session: Dict[str, Any], layer: str, since: str) -> Entry:
    """A session without TLS that started while TLS was already offered: a client that refuses TLS."""
    return {"who": session_label(session), "layer": layer,
            "why": "connected without TLS {} while the server already offered TLS: this client does not use "
                   "TLS and its next login would be refused".format(since),
            "fix": "make that client use TLS (e.g. sslmode=require / --ssl), or pass --enforce-anyway"}


def classify_sessions(sessions: List[Dict[str, Any]], offered_at: Optional[float], layer: str
                      ) -> Dict[str, List[Entry]]:
    """Split plaintext remote sessions into blockers and reconnect notes (see the module docstring).

    ``offered_at``: server epoch since when TLS has been offered (None: not offered yet, so no
    client has had the choice). A session whose start is unknown counts as started after. A
    session may say itself whether it started after (``after_offer``: True/False/None).
    """
    out = {"needs_action": [], "blockers": []}  # type: Dict[str, List[Entry]]
    for session in sessions:
        if session.get("tls") is not False or session.get("after") != "refused":
            continue
        started = session.get("started")
        after = session.get("after_offer")
        if after is None and offered_at is not None:
            after = started is None or started > offered_at + 1.0
        if after:
            since = "at " + when(started) if started else "(connection {})".format(session.get("id", "?"))
            out["blockers"].append(blocker(session, layer, since))
        elif not session.get("replication"):
            # A standby's own enable (stage use) moves its WAL receiver to TLS.
            out["needs_action"].append(reconnect(session, layer))
    return out


def blockers_line(blockers: List[Entry]) -> str:
    """One line for the error that stops enable."""
    parts = ["{} ({})".format(b["who"], b["why"]) for b in blockers[:3]]
    more = " and {} more".format(len(blockers) - 3) if len(blockers) > 3 else ""
    return ("enable stopped before changing anything: {} login(s) would stop working: {}{}; fix them "
            "(see 'dbtls-agent preflight') or pass --enforce-anyway".format(len(blockers), "; ".join(parts), more))


def stop_or_go(blockers: List[Entry], enforce: bool, say: Callable[[str], None]) -> None:
    """Raise before anything changed when there are blockers, unless the user insisted."""
    if not blockers:
        return
    if not enforce:
        raise AgentError(blockers_line(blockers))
    for entry in blockers:
        say("--enforce-anyway: {} will be refused ({})".format(entry["who"], entry["why"]))
