"""``make bench``: the four benchmark tables, written to bench/results/<date>-<name>.md (+ PNG plots).

    .venv/bin/python -m bench [--quick] [--seconds 30] [--reps 3] [--only downtime,scaling,certs,tls]

Never part of ``make test``. Uses its own environments (prefix ``b7-``) and removes them at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform as host_platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from bench import downtime, hostcpu, report, scaling, simenv, tlscost

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("downtime", "scaling", "certs", "tls")


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def certs_table(runs: int, python: str) -> str:
    argv = [sys.executable, str(ROOT / "bench" / "certs.py"), "--runs", str(runs), "--python", python]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise simenv.BenchError(f"bench/certs.py failed: {proc.stderr[-600:]}")
    return proc.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s pgbench runs, one downtime/scaling pass")
    parser.add_argument("--seconds", type=int, help="pgbench / mysqlslap run length (default 30, quick 5)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per figure (median reported)")
    parser.add_argument("--downtime-reps", type=int, help="repetitions of the downtime sequence (default "
                        "--reps, quick 1)")
    parser.add_argument("--scaling-reps", type=int, help="install repetitions per size (default --reps, quick 1)")
    parser.add_argument("--clients", type=int, default=4, help="pgbench -c / mysqlslap --concurrency")
    parser.add_argument("--sizes", default="1,2,4,8", help="database nodes per pg-cluster size")
    parser.add_argument("--topologies", default="pg-cluster,pg,mariadb", help="downtime topologies")
    parser.add_argument("--only", default=",".join(PARTS), help="parts to run: " + ",".join(PARTS))
    parser.add_argument("--release", default="bookworm")
    parser.add_argument("--name", help="results file name (default: quick or full)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (5 if args.quick else 30)
    dt_reps = args.downtime_reps or (1 if args.quick else args.reps)
    sc_reps = args.scaling_reps or (1 if args.quick else args.reps)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    name = args.name or ("quick" if args.quick else "full")
    command = "make bench" + (" BENCH_QUICK=1" if args.quick else "") if argv is None and len(sys.argv) <= 2 \
        else ".venv/bin/python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)

    subprocess.run([str(ROOT / ".venv" / "bin" / "dbtls"), "build"], cwd=ROOT, check=True, capture_output=True)
    started = time.monotonic()
    rep = report.Report(ROOT / "bench" / "results", dt.date.today().isoformat(), name)
    rep.header(command=command, quick=args.quick, seconds=seconds, reps=args.reps, dt_reps=dt_reps,
               sc_reps=sc_reps, host=f"{host_platform.node()} {host_platform.machine()}, "
               f"{hostcpu.cores()} CPUs, release {args.release}")
    release = args.release

    def part(title: str, work) -> None:
        try:
            work()
        except Exception as exc:  # one broken part must not cost the others' figures
            log(f"{title} FAILED: {exc}")
            rep.lines += [f"## {title}: FAILED", "", f"`{exc}`", ""]

    if "downtime" in parts:
        topos = [t for t in args.topologies.split(",") if t]
        part("1. Downtime", lambda: rep.downtime(
            downtime.run(topos, release, dt_reps, log),
            f".venv/bin/python -m bench --only downtime --downtime-reps {dt_reps} --topologies {','.join(topos)}"))
    if "scaling" in parts:
        sizes = [int(s) for s in args.sizes.split(",")]
        part("2. Install time", lambda: rep.scaling(
            scaling.run(sizes, release, sc_reps, log),
            f".venv/bin/python -m bench --only scaling --scaling-reps {sc_reps} --sizes {args.sizes}"))
    if "certs" in parts:
        pythons = (str(ROOT / ".venv" / "bin" / "python"), "/usr/bin/python3")
        part("3. Certificate work", lambda: rep.certs(
            [(py, certs_table(args.reps, py)) for py in pythons], args.reps))
    if "tls" in parts:
        def mariadb_or_error() -> dict:
            """MariaDB's half of table 4; a failure there keeps PostgreSQL's half and is reported."""
            try:
                return tlscost.run_mariadb(release, seconds, args.reps, args.clients, log)
            except Exception as exc:  # noqa: BLE001 - reported in the table, not swallowed
                log(f"4. TLS cost (MariaDB) FAILED: {exc}")
                rep.lines += ["## 4. TLS cost, MariaDB: FAILED", "", f"`{exc}`", ""]
                return {}

        part("4. TLS cost", lambda: rep.tls(
            tlscost.run_pg(release, seconds, args.reps, args.clients, log),
            mariadb_or_error(),
            f".venv/bin/python -m bench --only tls --seconds {seconds} --reps {args.reps} --clients {args.clients}"))
    rep.footer(time.monotonic() - started)
    path = rep.write()
    log(f"wrote {path.relative_to(ROOT)}" + "".join(f", {p.relative_to(ROOT)}" for p in rep.plots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
