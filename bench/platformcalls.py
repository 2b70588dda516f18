"""Sequential platform calls: ours (recorded on the simulated platform) vs the upstream add-ons
(counted statically from their manifests), and the modelled install time on the real platform.

    python -m bench.platformcalls ours --env tl-pgc --ops install,reissue-all,uninstall --json out.json
    python -m bench.platformcalls upstream --pg DIR --mysql DIR --json out.json
    python -m bench.platformcalls table ours-pg.json ours-maria.json upstream.json > result.md

``ours`` needs a running ``dbtls sim`` environment; ``upstream`` needs the upstream repositories as
git directories (their ``HEAD`` is read). docs/performance.md explains the model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench import jpscount
from dbtls.jps.timeline import DEFAULT_LATENCY, Recorder, summarise
from dbtls.sim import addon, cluster, platform

LATENCIES = (0.5, DEFAULT_LATENCY, 2.0)
OPS = ("install", "reissue-server", "reissue-all", "uninstall")
#: The layers (node counts) of the simulated topologies (dbtls.sim.topology.TOPOLOGIES).
LAYERS = {"pg-cluster": {"sqldb": 2, "pgpool": 1}, "mariadb-cluster": {"sqldb": 2, "proxy": 1}}
#: Which repository / launcher / upstream buttons stand for each of our operations.
UPSTREAM = {
    "pg-cluster": {"repo": "pg", "launcher": "marketplace/dbtls-postgres.jps",
                   "reissue-all": "reGenerateCerts", "reissue-server": "reGenerateServerCerts"},
    "mariadb-cluster": {"repo": "mysql", "launcher": "marketplace/dbtls-mysql.jps",
                        "reissue-all": "reGenerateCerts", "reissue-server": None},
}


# -- ours ------------------------------------------------------------------------------------

def run_ours(env: str, ops: list[str]) -> dict[str, Any]:
    """Run ``ops`` (install, reissue-<scope>, uninstall) with a recorder; every call, per op."""
    engine = cluster.client()
    out: dict[str, Any] = {"env": env, "ops": {}}
    with platform.serve(addon.repo_root(), platform.gateway(engine, env)) as base_url:
        for op in ops:
            session = addon.Session(env, base_url)
            recorder = Recorder()
            session.interp.recorder = recorder
            start = time.perf_counter()
            with recorder.operation(op):
                if op == "install":
                    results: Any = session.install({})
                elif op.startswith("reissue-"):
                    results = [("sqldb", session.press("Re-issue certificates", {"scope": op.split("-", 1)[1]}))]
                elif op == "uninstall":
                    results = session.uninstall()
                else:
                    raise SystemExit(f"platformcalls: unknown operation {op!r}")
            failed = [f"{g}: {r.error or r.message}" for g, r in results if not r.ok]
            if failed:
                raise SystemExit(f"platformcalls: {op} failed: {failed[0]}")
            s = summarise(recorder, op)
            out["ops"][op] = {
                "calls": s.calls, "sequential": s.sequential, "wall": round(s.wall, 2),
                "seconds": round(time.perf_counter() - start, 2),
                "by_handler": s.by_handler, "by_kind": s.by_kind, "by_addon": s.by_addon,
                "timeline": [{"kind": c.kind, "handler": c.handler, "path": c.path, "addon": c.addon,
                              "target": c.target, "nodes": list(c.node_ids), "depth": c.depth,
                              "start": round(c.start, 3), "end": round(c.end, 3)} for c in recorder.calls],
            }
            print(f"{env} {op}: {s.calls} calls, {s.sequential} sequential, {s.wall:.1f} s", file=sys.stderr)
    return out


# -- upstream --------------------------------------------------------------------------------

def _git_yaml(repo: Path, path: str) -> dict[str, Any]:
    text = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, text=True,
                          check=True).stdout
    return yaml.safe_load(text)


def _commit(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def count_upstream(repo: Path, topology: str) -> dict[str, Any]:
    """Calls of the upstream add-on on ``topology``: install on every layer (its manifest.jps
    installs logic.jps per layer), the re-issue buttons per layer, uninstall per layer."""
    layers = LAYERS[topology]
    top, logic = _git_yaml(repo, "manifest.jps"), _git_yaml(repo, "logic.jps")
    groups = ",".join(layers)
    settings = {"nodeGroups": groups, "envName": "env"}

    def resolve(ref: str) -> dict[str, Any]:
        if ref.split("?")[0] != "logic.jps":
            raise jpscount.CountError(f"unexpected nested manifest {ref!r}")
        return logic

    ops: dict[str, Any] = {}
    whole = jpscount.count(top, "onInstall", "", layers, settings=settings, resolve=resolve)
    ops["install"] = {"calls": whole.calls, "by_kind": dict(whole.by_kind), "by_handler": dict(whole.by_handler)}
    for op, handler in (("reissue-all", UPSTREAM[topology]["reissue-all"]),
                        ("reissue-server", UPSTREAM[topology]["reissue-server"]), ("uninstall", "onUninstall")):
        if handler is None:
            continue
        total = jpscount.Count()
        for group in layers:
            total.add(jpscount.count(logic, handler, group, layers, settings=settings))
        ops[op] = {"calls": total.calls, "by_kind": dict(total.by_kind), "by_handler": dict(total.by_handler),
                   "handler": handler}
    return {"commit": _commit(repo), "ops": ops}


def count_launcher(root: Path, topology: str) -> int:
    """Calls our marketplace launcher makes before manifest.jps runs (its script + one install per
    layer): ``dbtls sim install`` installs manifest.jps per layer directly, so they are added."""
    launcher = yaml.safe_load((root / UPSTREAM[topology]["launcher"]).read_text())
    settings = {"nodeGroups": ",".join(LAYERS[topology]), "envName": "env"}
    return jpscount.count(launcher, "onInstall", "", LAYERS[topology], settings=settings).calls


# -- table -----------------------------------------------------------------------------------

def table(ours: dict[str, dict[str, Any]], upstream: dict[str, dict[str, Any]], launcher: dict[str, int],
          latencies: tuple[float, ...] = LATENCIES) -> str:
    """Markdown: per topology and operation, sequential calls and modelled seconds, ours vs upstream.

    Ours: measured seconds on the simulated platform + sequential calls x latency. Upstream: its
    calls x latency only (its work is not measured here), a lower bound of its platform time."""
    lats = " | ".join(f"@{lat:g} s" for lat in latencies)
    lines = [f"| topology | operation | ours: sequential calls | ours: measured s | ours modelled: {lats} "
             f"| upstream: sequential calls | upstream latency only: {lats} |",
             "|---|---|---:|---:|" + "---:|" * len(latencies) + "---:|" + "---:|" * len(latencies)]
    for topology, data in ours.items():
        up = upstream.get(topology, {}).get("ops", {})
        for op in sorted(data["ops"], key=lambda k: OPS.index(k) if k in OPS else len(OPS)):
            o = data["ops"][op]
            seq = o["sequential"] + (launcher.get(topology, 0) if op == "install" else 0)
            u = up.get(op)
            mine = " | ".join(f"{o['wall'] + seq * lat:.1f}" for lat in latencies)
            theirs = " | ".join(f"{u['calls'] * lat:.1f}" if u else "-" for lat in latencies)
            lines.append(f"| {topology} | {op} | {seq} | {o['wall']:.1f} | {mine} | {u['calls'] if u else '-'} "
                         f"| {theirs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.platformcalls", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("ours")
    o.add_argument("--env", required=True)
    o.add_argument("--ops", default="install,reissue-server,reissue-all,uninstall")
    o.add_argument("--json", required=True)
    u = sub.add_parser("upstream")
    u.add_argument("--pg", type=Path, required=True)
    u.add_argument("--mysql", type=Path, required=True)
    u.add_argument("--json", required=True)
    t = sub.add_parser("table")
    t.add_argument("--ours", nargs=2, metavar=("TOPOLOGY", "JSON"), action="append", required=True)
    t.add_argument("--upstream", required=True)
    args = p.parse_args(argv)
    if args.cmd == "ours":
        Path(args.json).write_text(json.dumps(run_ours(args.env, args.ops.split(",")), indent=1))
    elif args.cmd == "upstream":
        repos = {"pg": args.pg, "mysql": args.mysql}
        data = {topo: count_upstream(repos[spec["repo"]], topo) for topo, spec in UPSTREAM.items()}
        data["launcher"] = {topo: count_launcher(addon.repo_root(), topo) for topo in UPSTREAM}
        Path(args.json).write_text(json.dumps(data, indent=1))
    else:
        up = json.loads(Path(args.upstream).read_text())
        ours = {topo: json.loads(Path(path).read_text()) for topo, path in args.ours}
        print(table(ours, up, up.get("launcher", {})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
