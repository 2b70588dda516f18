"""Benchmark: wall time to issue a full node set (CA + server + client), agent vs. upstream.

Not a test. The agent is timed as the manifest runs it: one interpreter start per command
(``ca init``, ``csr`` server, ``csr`` client, ``ca sign``, ``install-certs``). The upstream
pipeline is the seeds' ``openssl genrsa`` / ``req`` / ``x509`` sequence, one process per step.
Each pipeline runs --runs times (median reported), interleaved so machine noise hits all alike.

    .venv/bin/python bench/certs.py [--runs 5] [--python /usr/bin/python3]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_TYPES = ["rsa2048", "rsa3072", "rsa4096", "ecdsa-p256"]


def _run(argv: list[str], stdin: bytes = b"", env: dict[str, str] = None) -> bytes:
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit("{} failed: {}".format(" ".join(argv[:4]), proc.stderr.decode(errors="replace")))
    return proc.stdout


def agent_pipeline(python: str, backend: str, key_type: str) -> Callable[[str], None]:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "node-scripts"), DBTLS_CRYPTO_BACKEND=backend)

    def run(work: str) -> None:
        agent = [python, "-m", "dbtls_agent"]
        cert_dir = ["--cert-dir", os.path.join(work, "SSL-TLS")]
        _run(agent + ["ca", "init", "--key-type", key_type, "--env-name", "bench"] + cert_dir, env=env)
        server = _run(agent + ["csr", "--kind", "server", "--key-type", key_type] + cert_dir, env=env)
        client = _run(agent + ["csr", "--kind", "client", "--key-type", key_type] + cert_dir, env=env)
        bundle = _run(agent + ["ca", "sign", "--format", "pem"] + cert_dir, stdin=server + client, env=env)
        _run(agent + ["install-certs"] + cert_dir, stdin=bundle, env=env)

    return run


def upstream_pipeline(key_type: str) -> Callable[[str], None]:
    """The seeds' commands (RSA via genrsa; P-256 via ecparam, the same style)."""
    if key_type.startswith("rsa"):
        def genkey(path: str) -> list[str]:
            return ["openssl", "genrsa", "-out", path, key_type[3:]]
    else:
        def genkey(path: str) -> list[str]:
            return ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path]

    def run(work: str) -> None:
        p = lambda name: os.path.join(work, name)  # noqa: E731
        _run(genkey(p("root.key")))
        _run(["openssl", "req", "-new", "-x509", "-sha256", "-days", "3650", "-key", p("root.key"),
              "-subj", "/CN=bench CA", "-out", p("root.crt")])
        for kind, cn, days in (("server", "node1", "3650"), ("client", "webadmin", "365")):
            _run(genkey(p(kind + ".key")))
            _run(["openssl", "req", "-new", "-key", p(kind + ".key"), "-subj", "/CN=" + cn, "-out", p(kind + ".csr")])
            _run(["openssl", "x509", "-req", "-sha256", "-days", days, "-in", p(kind + ".csr"), "-CA", p("root.crt"),
                  "-CAkey", p("root.key"), "-set_serial", "01", "-out", p(kind + ".crt")])

    return run


def time_once(pipeline: Callable[[str], None]) -> float:
    work = tempfile.mkdtemp(prefix="dbtls-bench-")
    try:
        start = time.perf_counter()
        pipeline(work)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python", default=sys.executable, help="interpreter the agent runs under")
    parser.add_argument("--key-types", nargs="+", default=KEY_TYPES)
    args = parser.parse_args()
    names = ["upstream", "agent/openssl", "agent/cryptography"]
    rows = []
    for key_type in args.key_types:
        pipelines = [upstream_pipeline(key_type), agent_pipeline(args.python, "openssl", key_type),
                     agent_pipeline(args.python, "cryptography", key_type)]
        samples = {n: [] for n in names}  # type: Dict[str, List[float]]
        for _ in range(args.runs):
            for name, pipeline in zip(names, pipelines, strict=False):
                samples[name].append(time_once(pipeline))
        rows.append((key_type, {n: statistics.median(samples[n]) for n in names}))
    version = _run([args.python, "-c", "import sys, cryptography; print(sys.version.split()[0], cryptography.__version__)"])
    print("python {} / cryptography {}; {}; median of {} runs; seconds per full node set "
          "(CA + server + client)\n".format(*version.decode().split(), _run(["openssl", "version"]).decode().strip(), args.runs))
    print("| key type | upstream openssl | agent (openssl) | agent (cryptography) | upstream / agent-crypto | upstream / agent-openssl |")
    print("|---|---:|---:|---:|---:|---:|")
    for key_type, med in rows:
        print("| {} | {:.3f} | {:.3f} | {:.3f} | {:.1f}x | {:.1f}x |".format(
            key_type, med["upstream"], med["agent/openssl"], med["agent/cryptography"],
            med["upstream"] / med["agent/cryptography"], med["upstream"] / med["agent/openssl"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
