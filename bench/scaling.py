"""Table 2: wall time of the whole install through the manifest as the cluster grows.

``pg-cluster`` with 1, 2, 4 and 8 PostgreSQL nodes (primary + N-1 streaming standbys) and one
Pgpool-II node. Each size gets its own environment; each repetition is install then uninstall (the
uninstall restores the cluster, so the next install starts from the same state). The figure is the
time of ``Session.install`` (both layers, as the marketplace launcher installs them), and the busy
CPU seconds of the whole host meanwhile (the simulator, dockerd and every container share its cores).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench import hostcpu, simenv


@dataclass
class Size:
    db_nodes: int
    install_s: list[float] = field(default_factory=list)
    uninstall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    @property
    def install(self) -> float:
        return statistics.median(self.install_s)

    @property
    def cpu(self) -> float:
        """Median busy host CPU seconds during the install (every process, see bench.hostcpu)."""
        return statistics.median(self.cpu_s)

    @property
    def uninstall(self) -> float:
        return statistics.median(self.uninstall_s)


def run(sizes: list[int], release: str, reps: int, log: simenv.Log) -> list[Size]:
    out = []
    for n in sizes:
        name = f"b7-sc{n}"
        size = Size(n)
        with simenv.envs_removed([name], log):
            env = simenv.up("pg-cluster", name, release, standbys=n - 1, log=log)
            simenv.wait_streaming(env, n - 1)
            for rep in range(reps):
                with hostcpu.measure() as cpu:
                    res = simenv.run_op(name, "install")
                if not res.ok:
                    raise simenv.BenchError(f"{name} install: {res.error}")
                size.install_s.append(res.seconds)
                size.cpu_s.append(cpu.seconds)
                un = simenv.run_op(name, "uninstall")
                if not un.ok:
                    raise simenv.BenchError(f"{name} uninstall: {un.error}")
                size.uninstall_s.append(un.seconds)
                log(f"[{name}] rep {rep + 1}/{reps}: install {res.seconds:.1f}s, uninstall {un.seconds:.1f}s")
                simenv.wait_streaming(env, n - 1)
        out.append(size)
    return out
