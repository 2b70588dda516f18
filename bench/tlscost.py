"""Table 4: what TLS costs queries, per server key type.

PostgreSQL (``pg-cluster``, bookworm: PG 15). ``pgbench`` is not in the client image, so it runs
from the node images that ship it (``/usr/lib/postgresql/<major>/bin/pgbench``), nothing installed:

* **remote**: pgbench on the standby container against the primary over the docker network, as an
  application would connect. Plain is measured before the add-on is installed (the platform's
  ``host ... md5`` rules), TLS after (``hostssl ... scram-sha-256``): the -C ratio therefore also
  holds the md5 -> SCRAM change, which is what a user sees before/after the add-on.
* **loopback**: pgbench on the primary against 127.0.0.1 with the add-on installed. The add-on keeps
  the local ``host`` rules, so ``sslmode=disable`` and ``require`` use the same role, the same SCRAM
  secret and the same server: the ratio is TLS alone.

MariaDB (``mariadb``): ``mysqlslap`` (in the client image) from the client container to the
primary, ``--skip-ssl`` vs ``--ssl --ssl-ca=root.crt --ssl-verify-server-cert`` (how docs/mysql.md
tells applications to connect) on the same installed server (TLS is offered, not required),
``--detach=1`` for a new connection per query. The CA file matters for the per-connection figure:
the client library builds a new TLS context for every connection, and without ``--ssl-ca`` it loads
the whole system CA bundle into it (OpenSSL 3: ~40 ms of client CPU per connection here, which made
the old ``--ssl``-only figure 0.02-0.04 of plain). Runs of one cell are interleaved with the others
so machine noise hits all alike; each figure is the median of ``reps`` runs.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field

from bench import simenv

KEY_TYPES = ("rsa2048", "ecdsa-p256")
PG_DB = "postgres"
MY_SCHEMA = "dbtls_bench"
MY_DIR = "/tmp/dbtls-bench"
#: Client TLS flags as docs/mysql.md gives them: our root only, and the server name checked.
MY_TLS = f"--ssl --ssl-ca={MY_DIR}/root.crt --ssl-verify-server-cert"
SERVER_DIR = "/var/lib/jelastic/keys/SSL-TLS/server"


@dataclass
class Series:
    tps: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.tps) if self.tps else float("nan")


def _pgbench(container: str, host: str, sslmode: str, connect: bool, seconds: int, clients: int) -> float:
    flags = f"-n -S -T {seconds} -c {clients} -j {min(clients, 2)}" + (" -C" if connect else "")
    script = (". /etc/dbtls-sim/secrets.env; export PGPASSWORD=$WEBADMIN_PASSWORD; "
              f"$(ls /usr/lib/postgresql/*/bin/pgbench | tail -1) {flags} "
              f"'host={host} user=webadmin dbname={PG_DB} sslmode={sslmode}'")
    out = simenv.sh(container, script, timeout=seconds + 120)
    match = re.search(r"^tps = ([\d.]+)", out, re.M)
    if not match:
        raise simenv.BenchError(f"pgbench printed no tps: {out[-400:]}")
    return float(match.group(1))


def _server_key(container: str) -> str:
    out = simenv.sh(container, f"openssl x509 -noout -text -in {SERVER_DIR}/server.crt"
                               " | grep -m1 'Public Key Algorithm'", check=False)
    return out.split(":", 1)[-1].strip() or "?"


def run_pg(release: str, seconds: int, reps: int, clients: int, log: simenv.Log) -> dict:
    """{key_type: {(where, sslmode, conn): Series}, "_key": {...}}."""
    name = "b7-tls-pg"
    out: dict = {"_key": {}}
    with simenv.envs_removed([name], log):
        env = simenv.up("pg-cluster", name, release, log=log)
        simenv.wait_streaming(env, 1)
        primary = env.first("postgres")
        standby = next(n for n in env.all("postgres") if not n.is_master)
        simenv.sh(primary.name, f"runuser -u postgres -- $(ls /usr/lib/postgresql/*/bin/pgbench | tail -1) "
                                f"-q -i -s 1 -h /var/run/postgresql {PG_DB}")
        simenv.wait_streaming(env, 1)
        for key in KEY_TYPES:
            cells: dict = {}
            for _ in range(reps):  # plain, before the add-on: the platform's md5 rules
                for connect in (False, True):
                    cells.setdefault(("remote", "disable", connect), Series()).tps.append(
                        _pgbench(standby.name, primary.hostname, "disable", connect, seconds, clients))
            log(f"[{name}] install keyType={key}")
            res = simenv.run_op(name, "install", {"keyType": key})
            if not res.ok:
                raise simenv.BenchError(f"install {key}: {res.error}")
            out["_key"][key] = _server_key(primary.name)
            for rep in range(reps):
                for connect in (False, True):
                    for where, sslmode in (("remote", "require"), ("loopback", "disable"), ("loopback", "require")):
                        container, host = ((standby.name, primary.hostname) if where == "remote"
                                           else (primary.name, "127.0.0.1"))
                        cells.setdefault((where, sslmode, connect), Series()).tps.append(
                            _pgbench(container, host, sslmode, connect, seconds, clients))
                log(f"[{name}] {key} rep {rep + 1}/{reps} done")
            res = simenv.run_op(name, "uninstall")
            if not res.ok:
                raise simenv.BenchError(f"uninstall {key}: {res.error}")
            simenv.wait_streaming(env, 1)
            out[key] = cells
    return out


def _slap(env: simenv.Env, host: str, ssl: bool, detach: bool, queries: int, clients: int) -> float:
    flags = (f"--concurrency={clients} --number-of-queries={queries} --iterations=1 --query='SELECT 1' "
             f"--create-schema={MY_SCHEMA} --no-drop " + (MY_TLS if ssl else "--skip-ssl")
             + (" --detach=1" if detach else ""))
    out = simenv.sh(env.client, f"mysqlslap --defaults-extra-file={MY_DIR}/my.cnf -h {host} {flags} 2>&1",
                    timeout=900)
    if "rror" in out:
        raise simenv.BenchError(f"mysqlslap: {out[-400:]}")
    match = re.search(r"Average number of seconds to run all queries: ([\d.]+)", out)
    if not match:
        raise simenv.BenchError(f"mysqlslap printed no time: {out[-400:]}")
    return queries / max(float(match.group(1)), 1e-6)


def _ssl_in_use(env: simenv.Env, host: str) -> str:
    return simenv.sh(env.client, f"mariadb --defaults-extra-file={MY_DIR}/my.cnf -h {host} {MY_TLS} -N -B "
                                 "-e \"SHOW SESSION STATUS LIKE 'Ssl_version'\"").split()[-1]


def _copy_root(env: simenv.Env, primary: str) -> None:
    """The install's root certificate (public) to the client, for ``--ssl-ca``; a new one per install."""
    root = simenv.sh(primary, f"cat {SERVER_DIR}/root.crt")
    simenv.sh(env.client, f"cat > {MY_DIR}/root.crt", stdin=root.encode())


# A new-connection run leaves one client port in TIME_WAIT per query for 60 s; the client container
# has about 28 000 ephemeral ports, and a plain run at ~1 000 connections/s for 30 s ran out of them
# (mysqlslap: "Can't connect ... (99)"). Such runs are capped; plain and TLS alternate, so two
# capped runs fit in the port range with room for the calibration trials.
MAX_NEW_CONNECTIONS = 10000


def _sized(rate: float, seconds: int, clients: int, detach: bool) -> int:
    """Queries for a run of about ``seconds`` at ``rate``, within the port budget of new connections."""
    queries = max(clients * 10, int(rate * seconds))
    return min(queries, MAX_NEW_CONNECTIONS) if detach else queries


def _calibrate(env: simenv.Env, host: str, ssl: bool, detach: bool, clients: int, seconds: int) -> int:
    """Queries for a run of about ``seconds`` (a TLS handshake per query is far slower than plain).

    The trial grows until it lasts ``seconds / 10``: a trial of a few hundredths of a second is
    mostly start-up and timer resolution, and under-estimated the persistent rate threefold.
    """
    queries = clients * (25 if detach else 500)
    while True:
        rate = _slap(env, host, ssl, detach, queries, clients)
        took = queries / rate
        if took >= seconds / 10 or queries >= rate * seconds or (detach and queries >= MAX_NEW_CONNECTIONS / 10):
            return _sized(rate, seconds, clients, detach)
        queries = int(queries * min(10.0, 1.5 * seconds / 10 / took)) + 1


def run_mariadb(release: str, seconds: int, reps: int, clients: int, log: simenv.Log) -> dict:
    """{key_type: {(ssl, detach): Series}}; query counts sized so a run lasts about ``seconds``."""
    name = "b7-tls-my"
    out: dict = {"_key": {}, "_tls": {}}
    with simenv.envs_removed([name], log):
        env = simenv.up("mariadb", name, release, log=log)
        primary = env.first("mariadb")
        simenv.sh(primary.name, ". /etc/dbtls-sim/secrets.env; mariadb -uroot -e "
                                f"\"CREATE DATABASE IF NOT EXISTS {MY_SCHEMA}; "
                                f"GRANT SELECT ON {MY_SCHEMA}.* TO '$APP_USER'@'%'\"")
        simenv.sh(env.client, f"mkdir -p {MY_DIR}; . /etc/dbtls-sim/secrets.env; umask 077; "
                              "printf '[client]\\nuser=%s\\npassword=%s\\n' \"$APP_USER\" \"$APP_PASSWORD\" "
                              f"> {MY_DIR}/my.cnf")
        for key in KEY_TYPES:
            log(f"[{name}] install keyType={key}")
            res = simenv.run_op(name, "install", {"keyType": key})
            if not res.ok:
                raise simenv.BenchError(f"install {key}: {res.error}")
            out["_key"][key] = _server_key(primary.name)
            _copy_root(env, primary.name)
            out["_tls"][key] = _ssl_in_use(env, primary.hostname)
            queries = {cell: _calibrate(env, primary.hostname, cell[0], cell[1], clients, seconds)
                       for cell in ((False, False), (True, False), (False, True), (True, True))}
            cells: dict = {}
            for _ in range(reps):
                for detach in (False, True):
                    for ssl in (False, True):
                        rate = _slap(env, primary.hostname, ssl, detach, queries[(ssl, detach)], clients)
                        cells.setdefault((ssl, detach), Series()).tps.append(rate)
                        # Rates drift with the load on the shared host: size the next run on this one.
                        queries[(ssl, detach)] = _sized(rate, seconds, clients, detach)
            out[key] = cells
            res = simenv.run_op(name, "uninstall")
            if not res.ok:
                raise simenv.BenchError(f"uninstall {key}: {res.error}")
    return out
