"""Benchmark: wall time to issue a full node set (CA + server + client), agent vs. upstream.

Not a test. Whole processes are timed, interpreter start-up included. The agent runs as the manifest
runs it: the zipapp written by ``dbtls build`` (node-scripts/dist/dbtls-agent.pyz) unpacked into a
folder and compiled once by the interpreter under test, as the fetch step does on a node (that
preparation is not timed: a node does it once per agent build). On the CA node ``ca init`` and
``ca sign``; on every node two processes, the request (``csr --bundle``: server and client key and
CSR, as on a database node) and ``install-certs``. The upstream pipeline is the seeds' ``openssl
genrsa`` / ``req`` / ``x509`` sequence, one process per step, as one node runs it. Two agent
figures: the full set (all four processes) and the node-side work alone (request and install on
one node, the part every node pays; the CA node's two calls run once per layer). Each pipeline
runs --runs times (median reported), interleaved so machine noise hits all alike.

    .venv/bin/python bench/certs.py [--runs 5] [--python /usr/bin/python3]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT_PYZ = os.path.join(ROOT, "node-scripts", "dist", "dbtls-agent.pyz")
KEY_TYPES = ["rsa2048", "rsa3072", "rsa4096", "ecdsa-p256"]


def _cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], stdin: bytes = b"", env: dict[str, str] = None) -> bytes:
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit("{} failed: {}".format(" ".join(argv[:4]), proc.stderr.decode(errors="replace")))
    return proc.stdout


def unpack_agent(python: str, into: str) -> str:
    """The agent folder a node runs: the zipapp unpacked and compiled by ``python`` (as fetchAgent does)."""
    app = os.path.join(into, "agent")
    _run([python, "-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])", AGENT_PYZ, app])
    _run([python, "-m", "compileall", "-q", app])
    return app


def agent_pipeline(
    python: str, app: str, backend: str, key_type: str, node_only: bool = False
) -> Callable[[str], tuple[float, float]]:
    """The agent's processes; returns (wall, CPU) seconds (with ``node_only`` the request and install alone)."""
    env = dict(os.environ, DBTLS_CRYPTO_BACKEND=backend)

    def run(work: str) -> tuple[float, float]:
        agent = [python, app]
        ca_dir = ["--cert-dir", os.path.join(work, "CA")]
        node_dir = ["--cert-dir", os.path.join(work, "SSL-TLS")]
        node, ca = [0.0, 0.0], [0.0, 0.0]  # [wall, CPU] of the node's and the CA node's processes

        def timed(into: list[float], argv: list[str], stdin: bytes = b"") -> bytes:
            wall, cpu = time.perf_counter(), _cpu()
            out = _run(argv, stdin=stdin, env=env)
            into[0] += time.perf_counter() - wall
            into[1] += _cpu() - cpu
            return out

        timed(ca, agent + ["ca", "init", "--key-type", key_type, "--env-name", "bench"] + ca_dir)
        request = timed(node, agent + ["csr", "--bundle", "--user", "webadmin", "--key-type", key_type] + node_dir)
        csrs = "".join(json.loads(request.decode("ascii")).values()).encode("ascii")
        bundle = timed(ca, agent + ["ca", "sign", "--format", "pem"] + ca_dir, csrs)
        timed(node, agent + ["install-certs"] + node_dir, bundle)
        return (node[0], node[1]) if node_only else (node[0] + ca[0], node[1] + ca[1])

    return run


def upstream_pipeline(key_type: str) -> Callable[[str], tuple[float, float]]:
    """The seeds' commands (RSA via genrsa; P-256 via ecparam, the same style)."""
    if key_type.startswith("rsa"):
        def genkey(path: str) -> list[str]:
            return ["openssl", "genrsa", "-out", path, key_type[3:]]
    else:
        def genkey(path: str) -> list[str]:
            return ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path]

    def run(work: str) -> tuple[float, float]:
        start, cpu = time.perf_counter(), _cpu()
        p = lambda name: os.path.join(work, name)  # noqa: E731
        _run(genkey(p("root.key")))
        _run(["openssl", "req", "-new", "-x509", "-sha256", "-days", "3650", "-key", p("root.key"),
              "-subj", "/CN=bench CA", "-out", p("root.crt")])
        for kind, cn, days in (("server", "node1", "3650"), ("client", "webadmin", "365")):
            _run(genkey(p(kind + ".key")))
            _run(["openssl", "req", "-new", "-key", p(kind + ".key"), "-subj", "/CN=" + cn, "-out", p(kind + ".csr")])
            _run(["openssl", "x509", "-req", "-sha256", "-days", days, "-in", p(kind + ".csr"), "-CA", p("root.crt"),
                  "-CAkey", p("root.key"), "-set_serial", "01", "-out", p(kind + ".crt")])
        return time.perf_counter() - start, _cpu() - cpu

    return run


def time_once(pipeline: Callable[[str], tuple[float, float]]) -> tuple[float, float]:
    work = tempfile.mkdtemp(prefix="dbtls-bench-")
    try:
        return pipeline(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python", default=sys.executable, help="interpreter the agent runs under")
    parser.add_argument("--key-types", nargs="+", default=KEY_TYPES)
    args = parser.parse_args()
    names = ["upstream", "agent/openssl", "agent/cryptography", "node/openssl", "node/cryptography"]
    rows = []
    folder = tempfile.mkdtemp(prefix="dbtls-bench-agent-")
    try:
        app = unpack_agent(args.python, folder)
        for key_type in args.key_types:
            pipelines = [upstream_pipeline(key_type), agent_pipeline(args.python, app, "openssl", key_type),
                         agent_pipeline(args.python, app, "cryptography", key_type),
                         agent_pipeline(args.python, app, "openssl", key_type, node_only=True),
                         agent_pipeline(args.python, app, "cryptography", key_type, node_only=True)]
            samples = {n: [] for n in names}  # type: Dict[str, List[tuple[float, float]]]
            for _ in range(args.runs):
                for name, pipeline in zip(names, pipelines, strict=False):
                    samples[name].append(time_once(pipeline))
            rows.append((key_type, {n: (statistics.median(w for w, _ in samples[n]),
                                        statistics.median(c for _, c in samples[n])) for n in names}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    version = _run([args.python, "-c", "import sys, cryptography; print(sys.version.split()[0], cryptography.__version__)"])
    print("python {} / cryptography {}; {}; {} CPUs, load average {:.2f} at the end; median of {} runs; seconds, "
          "whole processes; full set = CA node and node (CA + server + client), node = request + install on one "
          "node\n".format(*version.decode().split(), _run(["openssl", "version"]).decode().strip(), os.cpu_count(),
                          os.getloadavg()[0], args.runs))
    for index, measure in ((0, "wall"), (1, "CPU (user + system of the processes)")):
        print(f"{measure}:\n")
        print("| key type | upstream openssl | agent full (openssl) | agent full (cryptography) | agent node (openssl) "
              "| agent node (cryptography) | upstream / node-crypto | upstream / node-openssl | upstream / full-crypto |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key_type, medians in rows:
            med = {n: pair[index] for n, pair in medians.items()}
            print("| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.2f}x | {:.2f}x | {:.2f}x |".format(
                key_type, med["upstream"], med["agent/openssl"], med["agent/cryptography"], med["node/openssl"],
                med["node/cryptography"], med["upstream"] / med["node/cryptography"],
                med["upstream"] / med["node/openssl"], med["upstream"] / med["agent/cryptography"]))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
