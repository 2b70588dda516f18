"""The postgres role's "nobody locked out" step: per-role md5 rules, needs_action, blockers.

Every enable run reads the pre-flight facts (:mod:`dbtls_agent.roles.postgres.preflight`) before it changes
anything. A run with the require stage then

* rewrites pg_hba.conf with a ``hostssl <db> <role> <address> md5`` rule in front of each rewritten
  rule for every role that still holds an md5 secret (and is not re-hashed by this run): the set is
  recomputed on every such run, so a role whose password was reset meanwhile loses its rule, and a
  role that got an md5 secret since gets one;
* stops before writing anything when a login cannot be kept working (``blockers``), unless
  ``--enforce-anyway`` was given.

The offer stage records since when the server offers TLS (server clock), which tells a client that
does not use TLS apart from one that connected before it had the choice.
"""

from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent.roles import base, lockout, replwait
from dbtls_agent.roles.postgres import client, hba, preflight, server


def plan(ctx: base.Context, info: Dict[str, Any], options: hba.HbaOptions, rehash: List[str],
         extra: Dict[str, Any], require: bool) -> Tuple[Dict[str, Any], hba.HbaOptions]:
    """(pre-flight report, hba options with the md5 roles filled in); raises on blockers when
    ``require`` and the user did not pass ``--enforce-anyway``."""
    facts = preflight.gather(info, extra.get("tls_offered_at"))
    report = preflight.analyse(facts, options, rehashed=rehash)
    streaming = [s for s in facts.get("standbys", []) if s.get("state") == "streaming"]
    replwait.remember(ctx.cert_dir, "postgres", [replwait.pg_standby_name(s["application_name"], s["address"])
                                                 for s in streaming])
    if require:
        lockout.stop_or_go(report["blockers"], bool(ctx.opt("enforce_anyway")), ctx.say)
    return report, options


def ssl_on_since(info: Dict[str, Any]) -> Optional[float]:
    """Postmaster start (server epoch) when the server already has ``ssl = on``; None otherwise.

    Used once, before our first offer: a server that offered TLS before the add-on came gave every
    client the choice since it started (at the latest).
    """
    rows = client.psql("SELECT current_setting('ssl'), extract(epoch FROM pg_postmaster_start_time())::text",
                         os_user=server.SERVICE_USER)
    return float(rows[0][1]) if rows and rows[0][0] == "on" else None


def server_now() -> float:
    return float(client.psql("SELECT extract(epoch FROM now())::text", os_user=server.SERVICE_USER)[0][0])


def record_offered(extra: Dict[str, Any], before: Optional[float]) -> bool:
    """Remember (once) since when TLS is offered; True when the record is new."""
    if "tls_offered_at" in extra:
        return False
    extra["tls_offered_at"] = before if before is not None else server_now()
    return True


def messages(report: Dict[str, Any], md5_rules: List[str]) -> List[str]:
    """Lines for the run's ``messages`` (the manifest prints them)."""
    out = []
    if md5_rules:
        out.append("{} role(s) keep logging in with md5 over TLS through rules of their own until their password "
                   "is set again: {}".format(len(md5_rules), ", ".join(md5_rules)))
    return out
