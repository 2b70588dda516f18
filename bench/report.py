"""Markdown tables and PNG plots of one benchmark run (bench/results/<date>-<name>.md/.png)."""

from __future__ import annotations

import math
from pathlib import Path

from bench import downtime, hostcpu, scaling, tlscost

NOISE = ("Absolute figures are noisy: the machine has 2 cores shared with other engineers' docker tests "
         "running at the same time. Compare the ratios, which come from the same run (cells interleaved).")


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


class Report:
    def __init__(self, folder: Path, date: str, name: str) -> None:
        self.folder, self.stem = folder, f"{date}-{name}"
        self.lines: list[str] = []
        self.plots: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def _plot(self, suffix: str, draw) -> None:
        plt = _plt()
        if plt is None:
            return
        fig, ax = plt.subplots(figsize=(9, 4.5))
        draw(ax)
        fig.tight_layout()
        path = self.folder / f"{self.stem}-{suffix}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        self.plots.append(path)
        self.lines += [f"![{suffix}]({path.name})", ""]

    def header(self, *, command: str, quick: bool, seconds: int, reps: int, dt_reps: int, sc_reps: int,
               host: str) -> None:
        mode = "QUICK mode (short runs, one downtime/scaling pass)" if quick else "full run"
        self.lines += [f"# dbtls benchmarks: {self.stem}", "",
                       f"Command: `{command}` — {mode}; pgbench/mysqlslap {seconds} s per run, median of {reps}; "
                       f"downtime sequence x{dt_reps}; install per size x{sc_reps}. Host: {host}.", "", NOISE, ""]

    # -- 1 -------------------------------------------------------------------------------------
    def downtime(self, cells: dict, command: str) -> None:
        self.lines += ["## 1. Downtime while the add-on installs, re-issues and uninstalls", "",
                       f"Reproduce: `{command}`", "",
                       "A client loop in the environment's client container sends `SELECT 1` every 10 ms "
                       "(persistent: one psql/mariadb process, one connection, reconnecting after an error; "
                       "fresh: a new client process and connection per query, so its rate is lower). "
                       "Operations run through manifest.jps (`dbtls sim install|press|uninstall` API). "
                       "*ours* = the add-on as built; *upstream* = hidden install setting `upstreamMode` "
                       "(agent `--upstream-mode`, `jem service restart` on every node, as the upstream "
                       "add-on does). Figures: failed/total queries, longest gap without a successful "
                       "answer (ms), p99 latency of successful queries (ms); median over repetitions, "
                       "worst in brackets when it differs.", "",
                       "| entry point | operation | connection | ours: failed | ours: gap ms | ours: p99 ms "
                       "| upstream: failed | upstream: gap ms | upstream: p99 ms |",
                       "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for topo, ops in cells.items():
            for op in downtime.OPS:
                for conn in downtime.CONN_MODES:
                    row = [downtime.ENTRY.get(topo, topo), op, conn]
                    for mode in downtime.MODES:
                        cell = ops.get(op, {}).get(mode, {}).get(conn)
                        row += _dt_cell(cell) if cell and cell.runs else ["-", "-", "-"]
                    self.lines.append("| " + " | ".join(row) + " |")
        self.lines.append("")
        errors = sorted({e.split("\n")[0][:160] for t in cells.values() for o in t.values() for m in o.values()
                         for c in m.values() for r in c.runs for e in r.errors})
        if errors:
            self.lines += ["Client errors seen (first line, deduplicated):", ""] + [f"- `{e}`" for e in errors[:20]]
            self.lines.append("")

        def draw(ax) -> None:
            labels, ours, ups = [], [], []
            for topo, ops in cells.items():
                for op in downtime.OPS:
                    c = ops.get(op, {})
                    if "ours" in c and "upstream" in c:
                        labels.append(f"{topo}\n{op}")
                        ours.append(c["ours"]["persistent"].median("longest_gap_ms"))
                        ups.append(c["upstream"]["persistent"].median("longest_gap_ms"))
            x = range(len(labels))
            ax.bar([i - 0.2 for i in x], ours, 0.4, label="ours")
            ax.bar([i + 0.2 for i in x], ups, 0.4, label="upstream mode")
            ax.set_xticks(list(x), labels, rotation=60, ha="right", fontsize=7)
            ax.set_ylabel("longest gap, persistent connection (ms)")
            ax.set_title("Downtime per operation")
            ax.legend()

        self._plot("downtime", draw)

    # -- 2 -------------------------------------------------------------------------------------
    def scaling(self, sizes: list[scaling.Size], command: str) -> None:
        base = sizes[0].install if sizes else float("nan")
        self.lines += ["## 2. Install time vs cluster size (pg-cluster + Pgpool-II)", "",
                       f"Reproduce: `{command}`", "",
                       "Wall time of `Session.install` (sqldb layer, then pgpool layer) from a settled cluster "
                       "(every standby streaming); uninstall between repetitions. Target T(8)/T(1) <= 1.5.", "",
                       "*host CPU s*: busy CPU seconds of the whole host during the install (median); "
                       f"*CPU floor s* = that / {hostcpu.cores()} cores, the shortest the install could take on this "
                       "machine if all of that work ran in parallel; *busy* = CPU s / (wall s x cores).", "",
                       "| DB nodes | install s (median) | runs | T(n)/T(1) | host CPU s | CPU floor s | busy | "
                       "uninstall s |", "|---:|---:|---|---:|---:|---:|---:|---:|"]
        for s in sizes:
            cpu = s.cpu if s.cpu_s else float("nan")
            self.lines.append(f"| {s.db_nodes} | {s.install:.1f} | {', '.join(f'{x:.1f}' for x in s.install_s)} | "
                              f"{s.install / base:.2f} | {cpu:.1f} | {cpu / hostcpu.cores():.1f} | "
                              f"{cpu / (s.install * hostcpu.cores()):.0%} | {s.uninstall:.1f} |")
        self.lines.append("")

        def draw(ax) -> None:
            ax.plot([s.db_nodes for s in sizes], [s.install for s in sizes], "o-", label="install")
            ax.plot([s.db_nodes for s in sizes], [1.5 * base for _ in sizes], "--", label="target 1.5 x T(1)")
            if all(s.cpu_s for s in sizes):
                ax.plot([s.db_nodes for s in sizes], [s.cpu / hostcpu.cores() for s in sizes], ":",
                        label=f"CPU floor (host CPU s / {hostcpu.cores()} cores)")
            ax.set_xlabel("database nodes")
            ax.set_ylabel("seconds")
            ax.set_title("Install time vs cluster size")
            ax.legend()

        self._plot("scaling", draw)

    # -- 3 -------------------------------------------------------------------------------------
    def certs(self, tables: list[tuple[str, str]], runs: int) -> None:
        self.lines += ["## 3. Certificate work per node (bench/certs.py)", ""]
        for python, table in tables:
            self.lines += [f"Reproduce: `.venv/bin/python bench/certs.py --runs {runs} --python {python}`", "",
                           table, ""]

    # -- 4 -------------------------------------------------------------------------------------
    def tls(self, pg: dict, my: dict, command: str) -> None:
        self.lines += ["## 4. TLS cost (TPS, TLS / plain)", "", f"Reproduce: `{command}`", "",
                       (tlscost.__doc__ or "").split("\n\n", 1)[1].strip(), "",
                       "| server | path | key (served) | connections | plain TPS | TLS TPS | TLS/plain |",
                       "|---|---|---|---|---:|---:|---:|"]
        ratios: dict[str, list[float]] = {}
        for key in tlscost.KEY_TYPES:
            cells = pg.get(key, {})
            for where in ("loopback", "remote"):
                for conn in (False, True):
                    plain, tls = cells.get((where, "disable", conn)), cells.get((where, "require", conn))
                    if not plain or not tls:
                        continue
                    r = tls.median / plain.median
                    ratios.setdefault(f"PG {where}", []).append(r)
                    note = " (plain before install, md5)" if where == "remote" else ""
                    self.lines.append(f"| PostgreSQL pgbench -S | {where}{note} | {key} ({pg['_key'].get(key)}) | "
                                      f"{'new per tx (-C)' if conn else 'persistent'} | {plain.median:.0f} | "
                                      f"{tls.median:.0f} | {r:.2f} |")
        for key in tlscost.KEY_TYPES:
            cells = my.get(key, {})
            for detach in (False, True):
                plain, tls = cells.get((False, detach)), cells.get((True, detach))
                if not plain or not tls:
                    continue
                r = tls.median / plain.median
                ratios.setdefault("MariaDB", []).append(r)
                self.lines.append(f"| MariaDB mysqlslap SELECT 1 | client -> primary (TLS: --ssl-ca, verified) | {key} ({my['_key'].get(key)}, "
                                  f"{my['_tls'].get(key)}) | {'new per query (--detach=1)' if detach else 'persistent'} | "
                                  f"{plain.median:.0f} | {tls.median:.0f} | {r:.2f} |")
        self.lines.append("")

        def draw(ax) -> None:
            labels, vals = [], []
            for key in tlscost.KEY_TYPES:
                for where in ("loopback", "remote"):
                    for conn in (False, True):
                        p, t = pg.get(key, {}).get((where, "disable", conn)), pg.get(key, {}).get((where, "require", conn))
                        if p and t:
                            labels.append(f"PG {where}\n{key}\n{'-C' if conn else 'persist'}")
                            vals.append(t.median / p.median)
                for detach in (False, True):
                    p, t = my.get(key, {}).get((False, detach)), my.get(key, {}).get((True, detach))
                    if p and t:
                        labels.append(f"MariaDB\n{key}\n{'detach=1' if detach else 'persist'}")
                        vals.append(t.median / p.median)
            ax.bar(range(len(vals)), vals)
            ax.axhline(1.0, color="grey", lw=0.8)
            ax.set_xticks(list(range(len(labels))), labels, fontsize=6)
            ax.set_ylabel("TPS with TLS / plain")
            ax.set_title("What TLS costs (higher is better)")

        self._plot("tls", draw)

    def footer(self, seconds: float) -> None:
        self.lines += [f"Total bench time: {seconds / 60:.1f} min." +
                       ("" if _plt() else " Plots skipped: matplotlib is not installed (pip install -e '.[bench]').")]

    def write(self) -> Path:
        path = self.folder / f"{self.stem}.md"
        path.write_text("\n".join(self.lines) + "\n")
        return path


def _dt_cell(cell: downtime.Cell) -> list[str]:
    out = []
    for attr, fmt in (("failed", "{:.0f}"), ("longest_gap_ms", "{:.0f}"), ("p99_ms", "{:.0f}")):
        med, worst = cell.median(attr), cell.worst(attr)
        text = fmt.format(med) if not math.isnan(med) else "-"
        if attr == "failed":
            text += "/" + fmt.format(statistics_median(r.queries for r in cell.runs))
        if len(cell.runs) > 1 and worst != med:
            text += f" ({fmt.format(worst)})"
        if cell.errors and attr == "failed":
            text += " op FAILED"
        out.append(text)
    return out


def statistics_median(values) -> float:
    import statistics
    return statistics.median(list(values))
