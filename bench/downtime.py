"""Table 1: what clients feel while the add-on installs, re-issues and uninstalls.

A query loop (bench/clientloop.py) runs inside the environment's client container, against the
entry point an application uses: Pgpool-II for ``pg-cluster``, the server for ``pg``, the MariaDB
primary for ``mariadb``. One loop keeps a persistent connection, one opens a fresh connection per
query; both run during each operation, started before it and stopped ``TAIL_S`` after it. The same
sequence runs twice: our add-on as built, then with the hidden ``upstreamMode`` install setting
(the agent restarts services like the upstream add-on does).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import simenv

LOOP_SRC = Path(__file__).with_name("clientloop.py")
LOOP_DIR = "/tmp/dbtls-bench"
OPS = ("install", "reissue-server", "reissue-client", "reissue-all", "uninstall")
MODES = {"ours": {}, "upstream": {"upstreamMode": True}}
CONN_MODES = ("persistent", "fresh")
TAIL_S = 1.0
ENTRY = {"pg-cluster": "Pgpool-II", "pg": "PostgreSQL (direct)", "mariadb": "MariaDB primary"}


@dataclass
class LoopFigures:
    queries: int
    failed: int
    longest_gap_ms: float
    p99_ms: float
    errors: list[str] = field(default_factory=list)


def figures(report: dict, start: float, end: float) -> LoopFigures:
    """Figures of the samples sent in [start, end] (host and container share CLOCK_MONOTONIC)."""
    t0 = report["t0"]
    rows = [(t0 + sent, lat / 1000.0, ok) for sent, lat, ok in report["samples"]]
    window = [r for r in rows if start <= r[0] <= end]
    done_ok = sorted(s + lat for s, lat, ok in rows if ok)
    before = [t for t in done_ok if t < start]
    last = before[-1] if before else start
    gap = 0.0
    for t in (t for t in done_ok if start <= t <= end + 10):
        gap = max(gap, t - last)
        last = t
    gap = max(gap, end - last)  # a loop that never recovered
    lat_ok = sorted(lat * 1000 for _, lat, ok in window if ok)
    p99 = lat_ok[min(len(lat_ok) - 1, int(0.99 * len(lat_ok)))] if lat_ok else float("nan")
    return LoopFigures(len(window), sum(1 for r in window if not r[2]), round(gap * 1000, 1), round(p99, 1),
                       report.get("errors", []))


class Loop:
    """One clientloop.py process in the client container, driven through ``docker exec -i``."""

    def __init__(self, env: simenv.Env, db: str, mode: str, tag: str) -> None:
        self.env, self.mode = env, mode
        work = f"{LOOP_DIR}/{tag}-{mode}"
        self.stop_file, self.ready_file = f"{work}.stop", f"{work}.ready"
        simenv.sh(env.client, f"rm -f {self.stop_file} {self.ready_file}")
        common = (f"--db {db} --mode {mode} --stop-file {self.stop_file} --ready-file {self.ready_file} "
                  "--deadline 900 --query-timeout 10")
        if db == "pg":
            host = env.first("pgpool" if env.topology == "pg-cluster" else "postgres").hostname
            script = (". /etc/dbtls-sim/secrets.env; export PGPASSWORD=$WEBADMIN_PASSWORD; "
                      f"exec python3 {LOOP_DIR}/clientloop.py {common} "
                      f"--conninfo 'host={host} user=webadmin dbname=postgres connect_timeout=5'")
        else:
            host = env.first("mariadb").hostname
            script = f"exec python3 {LOOP_DIR}/clientloop.py {common} --host {host} --defaults-file {LOOP_DIR}/my.cnf"
        self.proc = subprocess.Popen(["docker", "exec", "-i", env.client, "bash", "-c", script],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while simenv.sh(self.env.client, f"test -e {self.ready_file} && echo y", check=False).strip() != "y":
            if self.proc.poll() is not None or time.monotonic() > end:
                raise simenv.BenchError(f"client loop ({self.mode}) never answered: "
                                        f"{self.proc.stderr.read().decode(errors='replace')[-400:]}")
            time.sleep(0.2)

    def finish(self) -> dict:
        simenv.sh(self.env.client, f"touch {self.stop_file}")
        out, err = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            raise simenv.BenchError(f"client loop failed: {err.decode(errors='replace')[-400:]}")
        return json.loads(out)


def prepare_client(env: simenv.Env) -> None:
    simenv.sh(env.client, f"mkdir -p {LOOP_DIR}")
    simenv.copy_in(env.client, str(LOOP_SRC), f"{LOOP_DIR}/clientloop.py")
    if env.topology.startswith("mariadb"):
        # The application's account, into a 0600 option file (never on a command line).
        simenv.sh(env.client, ". /etc/dbtls-sim/secrets.env; umask 077; "
                              f"printf '[client]\\nuser=%s\\npassword=%s\\n' \"$APP_USER\" \"$APP_PASSWORD\" "
                              f"> {LOOP_DIR}/my.cnf")


def measure_op(env: simenv.Env, op: str, settings: dict) -> tuple[simenv.OpResult, dict[str, LoopFigures]]:
    db = "mariadb" if env.topology.startswith("mariadb") else "pg"
    loops = [Loop(env, db, mode, op) for mode in CONN_MODES]
    try:
        for loop in loops:
            loop.wait_ready()
        time.sleep(0.5)
        start = time.monotonic()
        result = simenv.run_op(env.name, op, settings if op == "install" else None)
        end = time.monotonic()
        time.sleep(TAIL_S)
    finally:
        reports = [loop.finish() for loop in loops]
    return result, {loop.mode: figures(rep, start, end + TAIL_S) for loop, rep in zip(loops, reports, strict=True)}


@dataclass
class Cell:
    """One (topology, operation, add-on mode, connection mode) over all repetitions."""

    seconds: list[float] = field(default_factory=list)
    runs: list[LoopFigures] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    def worst(self, attr: str) -> float:
        return max(getattr(r, attr) for r in self.runs)


def run(topologies: list[str], release: str, reps: int, log: simenv.Log) -> dict:
    """{topology: {op: {mode: {conn: Cell}}}} plus op wall times."""
    cells: dict = {}
    for topo in topologies:
        name = f"b7-dt-{topo}"
        with simenv.envs_removed([name], log):
            env = simenv.up(topo, name, release, log=log)
            if topo == "pg-cluster":
                simenv.wait_streaming(env, 1)
            prepare_client(env)
            for rep in range(reps):
                for mode, settings in MODES.items():
                    for op in OPS:
                        log(f"[{name}] rep {rep + 1}/{reps} {mode}: {op}")
                        result, figs = measure_op(env, op, settings)
                        for conn, fig in figs.items():
                            cell = cells.setdefault(topo, {}).setdefault(op, {}).setdefault(mode, {}) \
                                .setdefault(conn, Cell())
                            cell.seconds.append(result.seconds)
                            cell.runs.append(fig)
                            if not result.ok:
                                cell.errors.append(result.error)
                        log(f"    {result.seconds:.1f}s ok={result.ok} " + "; ".join(
                            f"{c}: {f.failed}/{f.queries} failed, gap {f.longest_gap_ms:.0f} ms, p99 {f.p99_ms:.0f} ms"
                            for c, f in figs.items()))
                        if not result.ok:  # reported as "op FAILED" in its cell; the sequence goes on
                            log(f"    FAILED: {result.error}")
    return cells
