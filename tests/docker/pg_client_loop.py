"""A PostgreSQL client loop that runs *inside* the client container (python3 + psql, no driver).

Copied into the container by the docker tests and started in the background while the agent
reconfigures a server. Two modes:

* ``persistent``: one psql process reads ``SELECT …;`` lines from a pipe, one every interval, over a
  single connection; a query that gets no answer within the per-query timeout, or a dead psql,
  counts as failed (and psql is started again so the loop goes on measuring).
* ``fresh``: a new psql process (new connection, new TLS handshake and authentication) per query.

The loop ends at ``--max-count`` queries, at ``--deadline`` seconds, or when ``--stop-file``
appears, whichever comes first, and prints one JSON object: queries, failed, longest gap between
two successful answers (ms), how many answers came over TLS, and the first errors. The password comes
from PGPASSWORD in the environment, never from argv.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import time

QUERY = "SELECT coalesce((SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()), 'none')"


class Tally:
    def __init__(self) -> None:
        self.queries = 0
        self.failed = 0
        self.tls = 0
        self.errors: list[str] = []
        self.last_ok: float | None = None
        self.first_ok: float | None = None
        self.longest_gap = 0.0
        self.events: list[tuple[float, str]] = []  # (time, "ok" | "auth" | "conn")

    def ok(self, answer: str) -> None:
        now = time.monotonic()
        self.events.append((now, "ok"))
        self.queries += 1
        if self.last_ok is not None:
            self.longest_gap = max(self.longest_gap, now - self.last_ok)
        self.first_ok = self.first_ok if self.first_ok is not None else now
        self.last_ok = now
        if answer == "true":
            self.tls += 1

    def fail(self, why: str) -> None:
        kind = "auth" if ("authenticat" in why or "password" in why) else "conn"
        self.events.append((time.monotonic(), kind))
        self.queries += 1
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(why.strip()[-300:])

    def outage_ms(self, kind: str) -> float:
        """Longest stretch with failures of ``kind``: from the last event of another kind before the
        first of them to the first successful answer after the last of them."""
        longest, i, events = 0.0, 0, self.events
        while i < len(events):
            if events[i][1] != kind:
                i += 1
                continue
            start = events[i - 1][0] if i > 0 else events[i][0]
            j = i
            while j < len(events) and events[j][1] != "ok":
                j += 1
            end = events[j][0] if j < len(events) else events[-1][0]
            if any(k == kind for _, k in events[i:j]):
                longest = max(longest, end - start)
            i = j
        return round(longest * 1000, 1)

    def outages(self) -> list[float]:
        """Every stretch of failed queries, in order: from the last successful answer before it (or
        its first failure) to the first successful answer after it (or its last failure), in ms."""
        found, i, events = [], 0, self.events
        while i < len(events):
            if events[i][1] == "ok":
                i += 1
                continue
            start = events[i - 1][0] if i > 0 else events[i][0]
            j = i
            while j < len(events) and events[j][1] != "ok":
                j += 1
            end = events[j][0] if j < len(events) else events[j - 1][0]
            found.append(round((end - start) * 1000, 1))
            i = j
        return found

    def report(self, mode: str) -> dict:
        span = (self.last_ok - self.first_ok) if self.first_ok is not None and self.last_ok is not None else 0.0
        auth = [t for t, k in self.events if k == "auth"]
        return {"mode": mode, "queries": self.queries, "failed": self.failed, "tls_answers": self.tls,
                "longest_gap_ms": round(self.longest_gap * 1000, 1), "span_s": round(span, 2),
                "auth_failures": len(auth), "conn_failures": self.failed - len(auth),
                "auth_window_ms": round((auth[-1] - auth[0]) * 1000, 1) if auth else 0.0,
                "conn_outage_ms": self.outage_ms("conn"), "outages_ms": self.outages(), "errors": self.errors}


def _psql_argv(conninfo: str) -> list[str]:
    return ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=0", "-d", conninfo]


def _read_line(proc: subprocess.Popen, timeout: float, buf: bytearray) -> str | None:
    """One line of psql's stdout within ``timeout`` seconds, or None."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            buf.extend(chunk)
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line.decode("utf-8", "replace").strip()


def _start(conninfo: str) -> subprocess.Popen:
    return subprocess.Popen(_psql_argv(conninfo), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0)


def persistent(args: argparse.Namespace, tally: Tally, done) -> None:
    proc, buf = _start(args.conninfo), bytearray()
    try:
        while not done():
            try:
                proc.stdin.write((QUERY + ";\n").encode())
                answer = _read_line(proc, args.query_timeout, buf)
            except OSError as exc:
                answer, why = None, str(exc)
            else:
                why = f"no answer within {args.query_timeout}s"
            if answer in ("true", "false", "none"):
                tally.ok(answer)
            else:
                if proc.poll() is not None:
                    why = proc.stderr.read().decode("utf-8", "replace") or f"psql exited {proc.returncode}"
                tally.fail(f"{why} (got {answer!r})")
                proc.kill()
                proc.wait()
                proc, buf = _start(args.conninfo), bytearray()
            time.sleep(args.interval)
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def fresh(args: argparse.Namespace, tally: Tally, done) -> None:
    while not done():
        try:
            proc = subprocess.run(_psql_argv(args.conninfo) + ["-c", QUERY], capture_output=True,
                                  timeout=args.query_timeout)
        except subprocess.TimeoutExpired:
            tally.fail(f"no answer within {args.query_timeout}s")
        else:
            answer = proc.stdout.decode("utf-8", "replace").strip()
            if proc.returncode == 0 and answer in ("true", "false", "none"):
                tally.ok(answer)
            else:
                tally.fail(proc.stderr.decode("utf-8", "replace") or f"rc={proc.returncode}")
        time.sleep(args.interval)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("persistent", "fresh"), required=True)
    parser.add_argument("--conninfo", required=True)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--max-count", type=int, default=100000)
    parser.add_argument("--deadline", type=float, default=300.0)
    parser.add_argument("--query-timeout", type=float, default=10.0)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--ready-file", help="created after the first successful answer")
    args = parser.parse_args()
    end = time.monotonic() + args.deadline
    tally = Tally()

    def done() -> bool:
        if args.ready_file and tally.last_ok is not None and not os.path.exists(args.ready_file):
            open(args.ready_file, "w").close()
        return tally.queries >= args.max_count or time.monotonic() >= end or os.path.exists(args.stop_file)

    (persistent if args.mode == "persistent" else fresh)(args, tally, done)
    print(json.dumps(tally.report(args.mode)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
