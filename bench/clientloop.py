"""A bounded query loop that runs INSIDE a client container (python3 and the CLI clients only).

Copied into the environment's client container by bench/downtime.py and started before an add-on
operation; it stops when the stop file appears or at the deadline, whichever comes first, and prints
one JSON object with every query's send time, latency and outcome (the host computes the figures).

* ``persistent``: one ``psql`` (or ``mariadb``) process reads ``SELECT 1;`` lines from a pipe over one
  connection, one every ``--interval`` seconds. An error on stderr, a dead client or no answer within
  ``--query-timeout`` counts as a failed query; the client is then started again (a new connection,
  as an application's pool would do) and the loop goes on.
* ``fresh``: a new client process per query (new connection, TLS handshake and authentication).

Credentials come from the environment (PGPASSWORD) or a 0600 option file (MariaDB), never argv.
"""

import argparse
import json
import os
import select
import subprocess
import time


def client_argv(args):
    if args.db == "pg":
        return ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=0", "-d", args.conninfo]
    # --unbuffered: one answer per line as soon as it arrives; --skip-reconnect: a dropped
    # connection must show up as an error, not be hidden by a silent reconnect.
    return ["mariadb", "--defaults-extra-file=" + args.defaults_file, "-h", args.host, "-N", "-B",
            "--unbuffered", "--skip-reconnect", "--force", "--connect-timeout=5"]


class Persistent:
    def __init__(self, args):
        self.args = args
        self.proc = None
        self.out = bytearray()

    def start(self):
        self.proc = subprocess.Popen(client_argv(self.args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0)
        self.out = bytearray()

    def stop(self):
        if self.proc is None:
            return
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.proc = None

    def query(self):
        """(ok, error text) for one ``SELECT 1`` over the open connection."""
        if self.proc is None:
            self.start()
        try:
            self.proc.stdin.write(b"SELECT 1;\n")
        except OSError as exc:
            self.stop()
            return False, "write: {}".format(exc)
        deadline = time.monotonic() + self.args.query_timeout
        fds = [self.proc.stdout.fileno(), self.proc.stderr.fileno()]
        while b"\n" not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                return False, "no answer within {}s".format(self.args.query_timeout)
            ready, _, _ = select.select(fds, [], [], left)
            if fds[1] in ready:
                err = os.read(fds[1], 4096).decode("utf-8", "replace")
                self.stop()
                return False, err.strip() or "client exited"
            if fds[0] in ready:
                chunk = os.read(fds[0], 4096)
                if not chunk:
                    self.stop()
                    return False, "client exited"
                self.out.extend(chunk)
        line, _, rest = bytes(self.out).partition(b"\n")
        self.out = bytearray(rest)
        if line.strip() == b"1":
            return True, ""
        return False, "unexpected answer {!r}".format(line[:80])


def fresh_query(args):
    argv = client_argv(args)
    argv = argv + (["-c", "SELECT 1"] if args.db == "pg" else ["-e", "SELECT 1"])
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=args.query_timeout)
    except subprocess.TimeoutExpired:
        return False, "no answer within {}s".format(args.query_timeout)
    if proc.returncode == 0 and proc.stdout.strip() == b"1":
        return True, ""
    return False, proc.stderr.decode("utf-8", "replace").strip() or "rc={}".format(proc.returncode)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("pg", "mariadb"), required=True)
    parser.add_argument("--mode", choices=("persistent", "fresh"), required=True)
    parser.add_argument("--conninfo", default="", help="libpq conninfo (pg)")
    parser.add_argument("--host", default="", help="server host (mariadb)")
    parser.add_argument("--defaults-file", default="", help="0600 option file with user/password (mariadb)")
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--query-timeout", type=float, default=10.0)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()
    end = time.monotonic() + args.deadline
    persistent = Persistent(args) if args.mode == "persistent" else None
    samples = []  # [sent (s since start), latency (ms), ok]
    errors = []
    t0 = time.monotonic()
    while time.monotonic() < end and not os.path.exists(args.stop_file):
        sent = time.monotonic()
        ok, err = persistent.query() if persistent else fresh_query(args)
        samples.append([round(sent - t0, 4), round((time.monotonic() - sent) * 1000, 2), ok])
        if ok and not os.path.exists(args.ready_file):
            open(args.ready_file, "w").close()
        if not ok and len(errors) < 8:
            errors.append(err[-300:])
        time.sleep(args.interval)
    if persistent:
        persistent.stop()
    print(json.dumps({"mode": args.mode, "t0": t0, "span_s": round(time.monotonic() - t0, 3), "samples": samples,
                      "errors": errors}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
