"""Change role secrets on a primary so that the standbys apply them before anyone sees them.

Pgpool-II opens one backend session per server for each client and asks the primary which
authentication method to use; a standby that asks for another method fails the whole login. A
role's method follows its stored secret (an md5 rule with a SCRAM secret asks for SCRAM), so while
the standbys have not yet replayed a secret change, the primary and the standbys disagree and new
sessions through Pgpool-II fail.

PostgreSQL keeps a committing transaction invisible to other sessions until its synchronous
replication wait is over (the commit is marked in the log but the transaction still shows as
running). So the change is committed with ``synchronous_commit = remote_apply`` while every
streaming standby is, for that moment only, a synchronous one: the primary's logins see the new
secret only once the standbys apply it. When a standby does not answer in time, the wait is
cancelled by a statement timeout; the commit then stands (as a plain commit would) and the caller
is told, so it can wait for replay instead.
"""

import os
import time
from typing import Callable, List, Optional, Tuple

from dbtls_agent import fsio, nodeos
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.postgres import client

#: How long the window with synchronous standbys may stay open at most.
SYNC_WAIT_S = 10.0
SETTING = "synchronous_standby_names"


def streaming_standbys(run: Callable[[str], List[List[str]]]) -> int:
    rows = run("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
    return int(rows[0][0])


def quorum_names(count: int) -> str:
    """``synchronous_standby_names`` that waits for ``count`` standbys, whatever their names."""
    if count < 1:
        raise ValueError("at least one standby is needed")
    return "ANY {} (*)".format(count)


def commit_sql(statements: List[str], timeout_s: float) -> str:
    """One transaction that waits until the synchronous standbys have applied it."""
    return "SET synchronous_commit = remote_apply;\nSET statement_timeout = '{}ms';\nBEGIN;\n{}\nCOMMIT;\n".format(
        int(timeout_s * 1000), "\n".join(s.rstrip(";") + ";" for s in statements))



def _put_back(path: str, data: bytes, st: os.stat_result) -> None:
    """Write ``data`` back with the mode and owner the file had (never through a link)."""
    fsio.atomic_write(path, data, st.st_mode & 0o7777, (st.st_uid, st.st_gid))


def marker_path(state_dir: str) -> str:
    """Present while this agent has the standbys synchronous (a killed run leaves it behind)."""
    return os.path.join(state_dir, "pg-sync-window")


def _runner(os_user: str) -> Callable[[str], List[List[str]]]:
    def run(sql: str) -> List[List[str]]:
        return client.psql(sql, os_user=os_user)
    return run


def close_leftover(state_dir: str, os_user: str = "postgres",
                   run: Optional[Callable[[str], List[List[str]]]] = None) -> bool:
    """Take synchronous replication off again when a killed run left it on (True if it did).

    Left on, every commit on the primary would wait for the standbys, and stop when one goes away.
    """
    marker = marker_path(state_dir)
    if fsio.read_bytes(marker) is None:
        return False
    run = run or _runner(os_user)
    run("ALTER SYSTEM RESET {}".format(SETTING))
    run("SELECT pg_reload_conf()")
    fsio.remove(marker)
    return True


def apply(statements: List[str], auto_conf: str, state_dir: str, os_user: str = "postgres",
          run: Optional[Callable[[str], List[List[str]]]] = None) -> Tuple[bool, str]:
    """Run ``statements`` (ALTER ROLE ... PASSWORD) as one transaction that the standbys apply first.

    Returns ``(synchronous, why)``: ``synchronous`` is False when the statements were committed the
    plain way (no standby streams, the operator runs synchronous replication already, or a standby
    did not confirm in time); ``why`` says which. The server rewrites postgresql.auto.conf for
    ALTER SYSTEM; its exact bytes from before are put back if the rewrite changed more than the setting.
    """
    run = run or _runner(os_user)
    close_leftover(state_dir, run=run)
    count = streaming_standbys(run)
    if count == 0:
        run(commit_sql(statements, SYNC_WAIT_S))
        return False, "no standby streams"
    # psql prints an empty setting as no row at all: ask a question that always has an answer.
    if run("SELECT current_setting('{}') <> ''".format(SETTING))[0][0] == "t":
        # The operator's own synchronous standbys: wait for those, change nothing of theirs.
        run(commit_sql(statements, SYNC_WAIT_S))
        return True, "the server's own synchronous standbys"
    before, st = fsio.read_with_stat(auto_conf)
    marker = marker_path(state_dir)
    fsio.ensure_dir(state_dir)
    fsio.atomic_write(marker, b"", 0o600)
    try:
        run("ALTER SYSTEM SET {} = {}".format(SETTING, client.literal(quorum_names(count))))
        run("SELECT pg_reload_conf()")
        in_quorum = "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('quorum', 'sync')"
        if not nodeos.poll(lambda: int(run(in_quorum)[0][0]) >= count, SYNC_WAIT_S, 0.05):
            run(commit_sql(statements, SYNC_WAIT_S))
            return False, "the standbys did not become synchronous within {:.0f}s".format(SYNC_WAIT_S)
        started = time.monotonic()
        run(commit_sql(statements, SYNC_WAIT_S))
        if time.monotonic() - started >= SYNC_WAIT_S:
            return False, "a standby did not apply the change within {:.0f}s".format(SYNC_WAIT_S)
        return True, "every streaming standby applied it first"
    finally:
        _close(run, auto_conf, before, st, marker)


def _close(run: Callable[[str], List[List[str]]], auto_conf: str, before: Optional[bytes],
           st: Optional[os.stat_result], marker: str) -> None:
    """Back to no synchronous standbys, postgresql.auto.conf byte for byte as it was."""
    errors = []
    try:
        run("ALTER SYSTEM RESET {}".format(SETTING))
    except AgentError as exc:
        errors.append(str(exc))
    if before is not None and st is not None and fsio.read_bytes(auto_conf) != before:
        _put_back(auto_conf, before, st)
    try:
        run("SELECT pg_reload_conf()")
    except AgentError as exc:
        errors.append(str(exc))
    if not errors:
        fsio.remove(marker)
    if errors:
        raise AgentError("could not take synchronous replication off again ({}); run "
                         "ALTER SYSTEM RESET {} and SELECT pg_reload_conf() on {}".format(
                             "; ".join(errors), SETTING, os.uname()[1]))
